"""Field types of the settings models: every package declares its own section of the
YAML (`indexer.ChainSettings`, `executor.ExecutorSettings`, the app's own) with these, so
a value means the same thing, and is refused with the same words, in every section.

Relative paths resolve against the config file's directory, passed as the validation
context `{"base": directory}`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationInfo

from chain.units import parse_address, parse_amount, parse_duration


def _whole(value: object) -> object:
    if isinstance(value, bool | float):
        raise ValueError(f"expected a whole number, not {value!r}")
    return value


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of seconds, not {value!r}")
    try:
        seconds = float(value)  # type: ignore[arg-type]
    except OverflowError:  # an int beyond any float: far above the limit below
        raise ValueError("too many seconds — it must be below 10^9") from None
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of seconds, not {value!r}") from None
    if not 0 < seconds < 10**9:
        raise ValueError(f"{value!r} seconds — it must be above 0")
    return seconds


def _amount_or_zero(value: object) -> float:
    """A number of seconds or days where 0 turns the feature off (`notify.retention`)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, not {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except OverflowError:
        raise ValueError("too large — it must be below 10^9") from None
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, not {value!r}") from None
    if not 0 <= number < 10**9:  # NaN fails too
        raise ValueError(f"{value!r} — it must be 0 (off) or above, below 10^9")
    return number


def _bool(value: object) -> object:
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, not {value!r}")
    return value


def _path(value: object) -> object:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a file path, not {value!r}")
    return value


def _resolve(value: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base")
    return value if base is None or value.is_absolute() else Path(base) / value


Int = Annotated[int, BeforeValidator(_whole)]
Seconds = Annotated[float, BeforeValidator(_seconds)]
ZeroOrMore = Annotated[float, BeforeValidator(_amount_or_zero)]  # 0: off
Bool = Annotated[bool, BeforeValidator(_bool)]
Wei = Annotated[int, BeforeValidator(parse_amount)]
Duration = Annotated[int, BeforeValidator(parse_duration)]
Address = Annotated[str, BeforeValidator(parse_address)]
ConfigPath = Annotated[Path, BeforeValidator(_path), AfterValidator(_resolve)]


class Section(BaseModel):
    """A settings section: unknown keys are refused, values never change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True)
