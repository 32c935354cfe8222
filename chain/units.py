"""Exact units of the chain and of its settings: wei amounts ("50 gwei", "0.05 ether"),
token amounts in base units, durations ("24h", "1h30m") and EIP-55 addresses.

Parsing never goes through a float: a uint256 is an int from end to end.
"""

from __future__ import annotations

import re

from eth_utils.address import to_checksum_address

from contracts import UINT256_MAX

ETHER = 10**18
GWEI = 10**9

UNITS = {"wei": 0, "gwei": 9, "ether": 18}  # decimals of each unit, in wei
_AMOUNT = re.compile(r"(\d+)(?:\.(\d+))?(?:\s*([A-Za-z]+))?")
_DURATION = re.compile(r"(?:\d+[dhms])+")
_DURATION_PART = re.compile(r"(\d+)([dhms])")
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def parse_amount(value: object) -> int:
    """Wei from an int or a string like "123", "50 gwei", "0.05 ether": exact, with
    integers only (never a float), and refused beyond the unit's decimals."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        if isinstance(value, float):
            raise ValueError(
                f"{value!r} is a floating-point number, which cannot hold wei exactly — write "
                'a string with a unit, e.g. "0.05 ether" or "50 gwei"'
            )
        raise ValueError(f'expected an amount like "50 gwei" or an int of wei, not {value!r}')
    if isinstance(value, int):
        wei = value
    else:
        match = _AMOUNT.fullmatch(value.strip())
        if match is None:
            raise ValueError(
                f'{value!r} is not an amount — write digits and a unit: "123" (wei), '
                '"50 gwei", "0.05 ether"'
            )
        whole, fraction, unit = match.group(1), match.group(2) or "", (match.group(3) or "wei")
        decimals = UNITS.get(unit.lower())
        if decimals is None:
            raise ValueError(f"unknown unit {unit!r} in {value!r} — use wei, gwei or ether")
        fraction = fraction.rstrip("0")  # trailing zeros are exact whatever the unit
        if len(fraction) > decimals:
            smaller = "gwei or wei" if unit.lower() == "ether" else "wei"
            raise ValueError(
                f"{value!r} has more decimals than {unit} allows ({decimals}) — it is not a "
                f"whole number of wei; write it in {smaller}"
            )
        wei = int(whole) * 10**decimals + int(fraction.ljust(decimals, "0") or "0")
    if not 0 <= wei <= UINT256_MAX:
        raise ValueError(f"{value!r} is outside 0 to 2**256-1 wei")
    return wei


def format_amount(wei: int) -> str:
    """An exact, readable form that `parse_amount` reads back to the same wei."""
    for unit in ("ether", "gwei"):
        scale = 10 ** UNITS[unit]
        if wei >= scale // 1000 and wei > 0:
            whole, rest = divmod(wei, scale)
            fraction = str(rest).rjust(UNITS[unit], "0").rstrip("0")
            return f"{whole}{'.' + fraction if fraction else ''} {unit}"
    return f"{wei} wei"


def parse_duration(value: object) -> int:
    """Seconds from an int or "90s", "10m", "24h", "2d", "1h30m"."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"expected a duration like \"24h\", \"10m\", \"90s\", \"2d\" or an int "
                         f"of seconds, not {value!r}")  # fmt: skip
    if isinstance(value, str):
        text = value.strip().lower()
        if text.isdigit():
            return int(text)
        if _DURATION.fullmatch(text) is None:
            raise ValueError(
                f"{value!r} is not a duration — write whole numbers with units d, h, m, s "
                '("24h", "1h30m") or an int of seconds'
            )
        return sum(int(n) * _SECONDS[u] for n, u in _DURATION_PART.findall(text))
    if value < 0:
        raise ValueError(f"{value} is negative — use 0 or more seconds")
    return value


def format_duration(seconds: int) -> str:
    parts, rest = [], seconds
    for unit, size in _SECONDS.items():
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return f"{seconds} s ({''.join(parts) or '0s'})"


def parse_address(value: object) -> str:
    """The checksummed form of a 0x + 40 hex address; a mixed-case address must carry a
    valid EIP-55 checksum (it is how a mistyped character gets caught)."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ValueError('YAML read this address as a number — put it in quotes: "0x..."')
    if not isinstance(value, str) or _HEX_ADDRESS.fullmatch(value.strip()) is None:
        raise ValueError(f"{value!r} is not an address — expected 0x followed by 40 hex digits")
    text = value.strip()
    checksummed: str = to_checksum_address(text)
    body = text[2:]
    if body not in (body.lower(), body.upper()) and text != checksummed:
        raise ValueError(
            f"{text} fails its EIP-55 checksum (mixed case): a character is probably "
            "mistyped — copy the address again from a trusted source"
        )
    return checksummed


def token_units(amount: int, decimals: int) -> str:
    """An exact decimal rendering of base units (no float on the way)."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**decimals)
    text = f"{whole:,}"
    if frac:
        text += "." + str(frac).rjust(decimals, "0").rstrip("0")
    return sign + text
