"""Per-key tenancy (CONTRACT §11): with auth on, what one access key stores is invisible to another.

Jobs carry their owner's uid (the queue filters on it); face galleries are stored as ``u<hex(uid)>.<gid>``,
and ``ops[].params.other.group`` of ``face_group_search`` is rewritten the same way before the engine runs
(:func:`scoped_request`), so one key never sees or searches another's gallery.
"""

from __future__ import annotations

import copy
from typing import Any

SCOPED_OPS = frozenset({"face_group_search"})


def scoped(gid: str, uid: str | None) -> str:
    """The stored group name for a caller's group name (unchanged when auth is off)."""
    return gid if not uid else f"u{uid.encode().hex()}.{gid}"


def unscoped(name: str, uid: str | None) -> str | None:
    """The caller's name of a stored group, or None when it is not the caller's."""
    if not uid:
        return name
    prefix = f"u{uid.encode().hex()}."
    return name[len(prefix):] if name.startswith(prefix) else None


def scoped_request(body: dict[str, Any], uid: str | None) -> dict[str, Any]:
    """A copy of a video request whose gallery names point at the caller's galleries."""
    if not uid or not any(isinstance(o, dict) and o.get("op") in SCOPED_OPS for o in body.get("ops") or []):
        return body
    out = copy.deepcopy(body)
    for op in out["ops"]:
        other = ((op.get("params") or {}).get("other") or {}) if isinstance(op, dict) else {}
        if op.get("op") in SCOPED_OPS and isinstance(other.get("group"), str):
            other["group"] = scoped(other["group"], uid)
    return out
