"""The one error of yamlsource.

```
Exception
└── YamlError     the text is not a YAML file we accept (syntax, duplicate key, control
                  character, object tag, alias bomb, too deep, too large): show it to the
                  operator, who fixes the file; nothing was read from it
```
"""

from __future__ import annotations


class YamlError(Exception):
    """Where the file went wrong (1-based line and column) and what to do about it."""

    def __init__(self, file: str, line: int, column: int, message: str) -> None:
        self.file = file
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"{file}:{line}:{column}: {message}")
