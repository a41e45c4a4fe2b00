"""Video abstract tasks (CONTRACT §12) as rows of the one job queue: how a source is keyed, how the queue's
states read as the seed's, and the GET response and the notification message built from a row. Pure: no IO.

- A task is a job of kind ``abstract`` (:data:`~.tables.ABSTRACT`) whose ``vid`` is :func:`source_key`: the
  identity is the source *string* (§12), and a source may be 1024 characters where ``vid`` holds 256. Its
  ``uid`` is the caller's, so tasks are looked up by (uid, source) and another key's source is not found.
- ``WAITING`` and ``RESCHEDULED`` read ``PROVISIONING`` (a retry queues again), ``DOING`` ``PROCESSING``,
  ``FAILED`` ``ERROR``.
- The job's ``error`` is the seed's message (the runner writes it); its code follows from it (:func:`error_of`),
  so the queue's generic failures (a lost worker, a crash) read as ``InternalError``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from argus_core.abstract import run

from . import tables as dbm
from .protocol import Record

PROVISIONING = "PROVISIONING"
PROCESSING = "PROCESSING"
FINISHED = "FINISHED"
ERROR = "ERROR"
CANCELLED = "CANCELLED"
STATUSES = (PROVISIONING, PROCESSING, FINISHED, ERROR, CANCELLED)

#: the queue's state → the seed's status
SEED_STATUS = {dbm.WAITING: PROVISIONING, dbm.RESCHEDULED: PROVISIONING, dbm.DOING: PROCESSING,
               dbm.FINISHED: FINISHED, dbm.FAILED: ERROR, dbm.CANCELLED: CANCELLED}

#: the seed's error table: each message names its code (messages are unique across codes)
CODES = {run.InvalidMedia.message: run.InvalidMedia.code, run.LIMIT_EXCEEDED: run.InvalidMedia.code,
         run.NO_VIDEO: run.InvalidMedia.code, run.TimeOut.message: run.TimeOut.code,
         run.AbstractError.message: run.AbstractError.code}


def source_key(source: str) -> str:
    """The ``vid`` of a source's tasks: its SHA-256 in hex (64 characters)."""
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()


def with_auth(source: str, auth: str | None) -> str:
    """The URL to fetch: ``auth`` (``k1=v1&k2=v2``) appended with ``?`` or ``&`` (the seed's rule)."""
    if not auth:
        return source
    return f"{source}{'&' if '?' in source else '?'}{auth}"


def error_of(message: str | None) -> dict[str, str]:
    """``{code, message}`` of a failed task: the seed's message kept, anything else an ``InternalError``."""
    if message in CODES:
        return {"code": CODES[message], "message": message}
    return {"code": run.AbstractError.code, "message": run.AbstractError.message}


def view(rec: Record) -> dict[str, Any]:
    """The ``GET /v1/videoAbstract`` body of a task (the seed's response, ``language`` the §14 extra).

    ``durationInSecond`` and ``startTime`` appear once known and not PROVISIONING; ``publishTime`` when the task
    ended; ``error`` on ERROR; ``clipResults`` is ``[]`` until FINISHED (empty results are never null)."""
    req = rec.request
    status = SEED_STATUS[rec.status]
    result = rec.result or {}
    out: dict[str, Any] = {"taskId": rec.job_id, "source": req["source"], "status": status,
                           "percent": 100 if status == FINISHED else max(0, min(100, rec.percent)),
                           "videoType": req.get("videoType", "general")}
    if status != PROVISIONING:
        if "durationInSecond" in result:
            out["durationInSecond"] = result["durationInSecond"]
        elif rec.duration_ms is not None:
            out["durationInSecond"] = round(rec.duration_ms / 1000)
    if req.get("notification"):
        out["notification"] = req["notification"]
    out["createTime"] = dbm.rfc3339(rec.created_at)
    if status != PROVISIONING and rec.started_at is not None:
        out["startTime"] = dbm.rfc3339(rec.started_at)
    if status in (FINISHED, ERROR, CANCELLED):
        out["publishTime"] = dbm.rfc3339(rec.updated_at)
    out["language"] = req.get("language", "zh")
    out["clipResults"] = result.get("clipResults", [])
    if status == ERROR:
        out["error"] = error_of(rec.error)
    return out


def accepted(rec: Record) -> dict[str, Any]:
    """The ``PUT /v1/videoAbstract`` answer: ``{source, status, videoType, percent, notification?, createTime}``,
    the task as it was created (PROVISIONING, 0 %), whether or not a worker has claimed it since."""
    full = view(msgspec.structs.replace(rec, status=dbm.WAITING, percent=0, started_at=None))
    return {k: full[k] for k in ("source", "status", "videoType", "percent", "notification", "createTime")
            if k in full}


def message_id(job_id: str) -> str:
    """One notification per task (its end): a re-run cannot enqueue it twice."""
    return f"{job_id}.notification"


def notification(rec: Record) -> dict[str, Any]:
    """What the task's notification endpoint receives: ``{messageId, messageBody: <the GET body as JSON>}``."""
    return {"messageId": message_id(rec.job_id), "messageBody": msgspec.json.encode(view(rec)).decode()}
