"""The daemon's configuration: one YAML file parsed once into pydantic models, which the
components take as they are (`chain:` is `indexer.ChainSettings`, `executor:` is
`executor.ExecutorSettings`).

- `models`: `WardenConfig` and the app's own sections; the defaults that depend on other
  keys are decided when it is validated;
- `loading`: `load_config(path, environ)`, every problem at once in a `ConfigError`;
- `secrets`: `${NAME}` values and `*_file` secrets; `overrides`: `WARDEN_<SECTION>__<KEY>`
  environment overrides;
- `database`: the `database:` key, a SQLite path or a PostgreSQL URL kept as a secret;
- `checks`: the rules across keys; `describe`: the config as safe-to-log lines;
- `yaml_reader`: the file read with the line of every key (through `yamlsource`).
"""

from warden.app.settings.database import DatabaseUrl, target, where
from warden.app.settings.errors import ConfigError
from warden.app.settings.loading import load_config
from warden.app.settings.models import (
    ANVIL_CHAIN_ID,
    ApiConfig,
    BackupsConfig,
    DevnetConfig,
    LoggingConfig,
    RulesConfig,
    WardenConfig,
)

__all__ = [
    "ANVIL_CHAIN_ID",
    "ApiConfig",
    "BackupsConfig",
    "ConfigError",
    "DatabaseUrl",
    "DevnetConfig",
    "LoggingConfig",
    "RulesConfig",
    "WardenConfig",
    "load_config",
    "target",
    "where",
]
