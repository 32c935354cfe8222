"""The one error of the settings: the config cannot be used, every reason in `.problems`.

Errors at start, grouped by what the caller should do (both: give up, exit 2, a person
must fix the config):

    ConfigError             this package: the file or an override (every problem at once)
    executor.SignerError    `WardenConfig.load_signer`: keystore unreadable, wrong password
"""

from __future__ import annotations


class ConfigError(Exception):
    """The config cannot be used; `.problems` holds every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))
