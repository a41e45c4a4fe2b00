"""Callback bodies and message ids (CONTRACT §7, §9). Pure functions: no IO.

Message ids are deterministic, so when a job is re-run after a crash the same callback gets the same id:
the outbox refuses the duplicate, and a receiver that saw the first delivery can drop a repeat by the
``webhook-id`` header.
"""

from __future__ import annotations

from typing import Any

from argus_core import verdict


def segment_body(vid: str, op: str, segment: dict[str, Any]) -> dict[str, Any]:
    """``hookURL_segment``: ``{id, op, result:{offset_begin, offset_end, labels, cuts}}``."""
    return {"id": vid, "op": op, "result": segment}


def op_body(vid: str, op: str, result: dict[str, Any]) -> dict[str, Any]:
    """Op ``hookURL``: ``{id, op, code, message, result:{labels, segments}}``."""
    return {"id": vid, "op": op, "code": 0, "message": "", "result": result}


def final_body(vid: str, result: dict[str, Any] | None, error: str | None = None,
               meta: Any = None) -> dict[str, Any]:
    """``params.hookURL``: ``{id, result:{<op>:{labels, segments}}, error?}`` (+ ``meta`` when the
    request carried ``data.attribute.meta``, as the original did)."""
    body: dict[str, Any] = {"id": vid, "result": result or {}}
    if meta is not None:
        body["meta"] = meta
    if error:
        body["error"] = error
    elif result and verdict.overall(result) is not None:
        body["suggestion"] = verdict.overall(result)  # CONTRACT §14: the whole video's verdict
    return body


def segment_msg_id(job_id: str, op: str, index: int) -> str:
    return f"{job_id}.segment.{op}.{index}"


def op_msg_id(job_id: str, op: str) -> str:
    return f"{job_id}.op.{op}"


def final_msg_id(job_id: str) -> str:
    return f"{job_id}.final"


def chain_of(job_id: str, url: str) -> str:
    """One job's callbacks to one URL go out in order; different URLs do not wait for each other."""
    return f"{job_id} {url}"[:300]


# -- Argus-Vframe (CONTRACT §9) -------------------------------------------------------------------------

def vframe_url(base: str, step: str, job_id: str, token: str) -> str:
    """``<callback base>{begin|cuts|end}/<id>/<token>``."""
    if not base.endswith("/"):
        base += "/"
    return f"{base}{step}/{job_id}/{token}"


def vframe_cuts_body(cuts: list[dict[str, Any]], code: int = 0, message: str = "") -> dict[str, Any]:
    return {"code": code, "message": message, "result": {"cuts": cuts}}


def vframe_end_body(code: int = 0, message: str = "") -> dict[str, Any]:
    return {"code": code, "message": message}
