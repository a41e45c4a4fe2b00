"""Lenient readers of per-request op parameters (``params.other``) and of operator flags.

Lenient on purpose: ops run on batches that mix jobs, and raising here would fail every job's frames. A
malformed value falls back to the default with a warning in the log."""

from __future__ import annotations

import logging
import math
from typing import Any, NamedTuple

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


# -- validation at submit (issue 10) ----------------------------------------------------------------------------
# The lenient readers above stay as the last line of defence inside a batch; a request is refused up front
# instead, with a detail that names the field, so that one job's bad value never reaches a batch that other
# jobs share (``params.other.min_score: "abc"`` failed every job of its ocr batch before).
class Number(NamedTuple):
    """A finite number in ``[lo, hi]`` (``integer``: a whole number)."""

    lo: float
    hi: float
    integer: bool = False

    def problem(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            return f"must be a {'whole ' if self.integer else ''}number in [{self.lo:g}, {self.hi:g}]"
        if self.integer and value != int(value):
            return f"must be a whole number in [{self.lo:g}, {self.hi:g}]"
        if not self.lo <= value <= self.hi:
            return f"must be in [{self.lo:g}, {self.hi:g}]"
        return None


class Flag(NamedTuple):
    """A flag as :func:`parse_flag` reads it."""

    def problem(self, value: Any) -> str | None:
        return None if parse_flag(value) is not None else "must be true or false"


class Text(NamedTuple):
    """A non-empty string of at most ``max_len`` characters."""

    max_len: int = 256

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value or len(value) > self.max_len:
            return f"must be a non-empty string of at most {self.max_len} characters"
        return None


class Texts(NamedTuple):
    """A string or a list of at most ``max_items`` strings (each at most ``max_len`` characters)."""

    max_items: int = 1000
    max_len: int = 256

    def problem(self, value: Any) -> str | None:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or len(items) > self.max_items or \
                not all(isinstance(v, str) and len(v) <= self.max_len for v in items):
            return f"must be a string or a list of at most {self.max_items} strings"
        return None


class Choice(NamedTuple):
    """One of a fixed set of strings."""

    options: tuple[str, ...]

    def problem(self, value: Any) -> str | None:
        return None if value in self.options else f"must be one of {', '.join(map(repr, self.options))}"


ParamSpec = Number | Flag | Text | Texts | Choice
#: the score thresholds every op reads
SCORE = Number(0.0, 1.0)


def check_other(op: str, params: OpParams, schema: dict[str, ParamSpec]) -> None:
    """Raise ``invalid parameters`` (400, CONTRACT §1) with a detail naming the first ``params.other`` key of
    ``schema`` whose value is malformed. Keys outside the schema are ignored, as unknown keys are (§1);
    ``null`` means "not given"."""
    from ..errors import InvalidRequest

    for key, spec in schema.items():
        value = (params.other or {}).get(key)
        if value is None:
            continue
        problem = spec.problem(value)
        if problem is not None:
            raise InvalidRequest(detail=f"ops[{op}].params.other.{key} {problem} (got {_short(value)})",
                                 public=True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
