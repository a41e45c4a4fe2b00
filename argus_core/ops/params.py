"""Lenient readers of per-request op parameters (``params.other``) and of operator flags.

Lenient on purpose: ops run on batches that mix jobs, and raising here would fail every job's frames. A
malformed value falls back to the default with a warning in the log."""

from __future__ import annotations

import logging
import math
from typing import Any

from ..request import OpParams

log = logging.getLogger("argus.ops")

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def parse_flag(value: Any) -> bool | None:
    """A flag as JSON, config files and environment variables write it; None when it is not one."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and _finite(value):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    return None


def truthy(value: Any) -> bool:
    """An operator option or request flag that is set (``true``, any non-zero number, ``"yes"``, …)."""
    return parse_flag(value) is True


def _warn(key: str, value: Any, default: Any) -> None:
    log.warning("ignoring params.other.%s=%r (using %r)", key, value, default)


def _number(params: OpParams, key: str, default: float) -> float:
    """``params.other[key]`` if it is a finite number, else ``default`` (with a warning if present)."""
    value = params.other.get(key) if params.other else None
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
        _warn(key, value, default)
        return default
    return value


def _finite(value: int | float) -> bool:
    # JSON may carry integers too large for a float (1e400 written out): not a usable parameter
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def other_float(params: OpParams, key: str, default: float, lo: float = 0.0, hi: float = 1.0) -> float:
    """``params.other[key]`` as a number clamped to ``[lo, hi]``; missing or malformed gives ``default``."""
    return float(min(max(_number(params, key, default), lo), hi))


def other_int(params: OpParams, key: str, default: int, lo: int, hi: int) -> int:
    """``params.other[key]`` as a whole number clamped to ``[lo, hi]`` (fractions truncated)."""
    return min(max(int(_number(params, key, default)), lo), hi)


def other_bool(params: OpParams, key: str, default: bool = False) -> bool:
    """``params.other[key]`` as a flag (see :func:`parse_flag`); missing or malformed gives ``default``."""
    value = params.other.get(key) if params.other else None
    if value is None:
        return default
    flag = parse_flag(value)
    if flag is None:
        _warn(key, value, default)
        return default
    return flag
