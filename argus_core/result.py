"""Result shapes of CONTRACT §3/§5/§7 as msgspec Structs (what crosses the engine's public boundary)."""

from __future__ import annotations

from typing import Any

import msgspec


class Label(msgspec.Struct):
    label: str
    score: float


class CutOutput(msgspec.Struct):
    """One op's verdict on one frame, as an inference worker returns it: labels (before the §4 filter)
    and the per-cut ``result`` (§3)."""

    labels: list[Label]
    result: Any


class CutIn(msgspec.Struct):
    """One op's verdict on one sampled frame: the input of :func:`argus_core.aggregate`."""

    offset: int
    labels: list[Label] = []
    result: Any = None
    uri: str | None = None


class Cut(msgspec.Struct, omit_defaults=True):
    offset: int
    result: Any = None
    uri: str | None = None


class Segment(msgspec.Struct):
    offset_begin: int
    offset_end: int
    labels: list[Label]
    cuts: list[Cut]


class OpResult(msgspec.Struct):
    labels: list[Label] = []
    segments: list[Segment] = []


def to_builtins(obj: Any) -> Any:
    """Plain dicts/lists for JSON, as the sync response and callbacks carry them."""
    return msgspec.to_builtins(obj)
