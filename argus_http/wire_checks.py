"""Checks of what remote workers post to the queue API (CONTRACT §8), before anything is recorded: a bad
event is 400 with a detail, never a 500 (issue 10: ``index: "abc"`` or ``null`` raised in ``int()``), and a
batch with one bad event records none of them."""

from __future__ import annotations

from typing import Any

from argus_core.errors import InvalidRequest

EVENT_TYPES = ("segment", "op", "callback")
#: a segment index beyond this is not one a job can have (max frames per job is a few thousand)
MAX_INDEX = 10**9


def checked_events(events: Any) -> list[dict[str, Any]]:
    """``body.events`` when every event is well formed; raises ``invalid parameters`` naming the first bad one."""
    if not isinstance(events, list):
        raise InvalidRequest(detail="events must be a list", public=True)
    for i, ev in enumerate(events):
        if not isinstance(ev, dict):
            raise InvalidRequest(detail=f"events[{i}] must be an object", public=True)
        kind = ev.get("type")
        if kind not in EVENT_TYPES:
            raise InvalidRequest(detail=f"events[{i}].type must be one of {', '.join(EVENT_TYPES)}", public=True)
        if kind in ("segment", "op") and not (isinstance(ev.get("op"), str) and ev["op"]):
            raise InvalidRequest(detail=f"events[{i}].op must be a non-empty string", public=True)
        if kind == "segment":
            index = ev.get("index", 0)
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
                raise InvalidRequest(detail=f"events[{i}].index must be a whole number in [0, {MAX_INDEX}]", public=True)
        if ev.get("result") is not None and not isinstance(ev.get("result"), dict):
            raise InvalidRequest(detail=f"events[{i}].result must be an object", public=True)
        if kind == "callback":
            for key in ("url", "name"):
                if not isinstance(ev.get(key), str):
                    raise InvalidRequest(detail=f"events[{i}].{key} must be a string", public=True)
            if ev.get("body") is not None and not isinstance(ev.get("body"), dict):
                raise InvalidRequest(detail=f"events[{i}].body must be an object", public=True)
    return events
