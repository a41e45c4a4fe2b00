"""What every job queue offers a worker (CONTRACT §7–§8): the :class:`Lease` it hands out, the
:class:`Backend` protocol, and the :class:`Hooks` of a job, worked out once when it is submitted.

Two implementations: :class:`argus_http.queue.database.JobQueue` (the database itself) and
:class:`argus_http.queue.remote.RemoteQueue` (the queue API of another server). Both pass the one contract
suite in ``tests/http/test_http_queue_contract.py``.
"""

from __future__ import annotations

from typing import Any, Iterable, Protocol, Sequence

import msgspec

from argus_core.request import VideoRequest

#: Error text of a job killed by a user (CONTRACT §7).
CANCELLED_MESSAGE = "context canceled"


class LiveState(msgspec.Struct, omit_defaults=True):
    """A running live job's connection as its worker last reported it (issue 12), stored with the job: the job
    GET shows it as ``live`` and ``/metrics`` sums it; ``offset_ms`` is where a job resumed on another worker
    starts its clock past, so offsets keep growing across a worker's death."""

    connected: bool
    reconnects: int = 0
    last_frame_at: float | None = None  #: epoch seconds
    lag_ms: int | None = None
    offset_ms: int | None = None


class Lease(msgspec.Struct):
    """A claimed job: what a worker needs to run it, and the token that proves it holds it."""

    job_id: str
    token: str
    uid: str
    kind: str
    vid: str
    request: dict[str, Any]
    attempts: int
    timeout: float
    #: a live job run before (RESCHEDULED): its clock continues past this offset (0: a fresh start)
    resume_ms: int = 0


class Hooks(msgspec.Struct, omit_defaults=True):
    """The callback URLs of one video request, stored with the job at submit time so that no callback
    has to parse the request again."""

    final: str | None = None
    op: dict[str, str] = {}
    segment: dict[str, str] = {}
    meta: Any = None

    @classmethod
    def of(cls, req: VideoRequest) -> "Hooks":
        """The hooks of a parsed request (aliases already resolved by ``parse_request``, CONTRACT §1)."""
        h = cls(final=req.params.hook_url, meta=req.data.attribute.meta if req.data.attribute else None)
        for op in req.ops:
            if op.hook_url:
                h.op[op.op] = op.hook_url
            if op.hook_url_segment:
                h.segment[op.op] = op.hook_url_segment
        return h


class Record(msgspec.Struct, frozen=True):
    """One job row as the views read it (and its result once FINISHED): what a status page is built from,
    e.g. the video abstract GET of CONTRACT §12 (:func:`argus_http.queue.abstracts.view`)."""

    job_id: str
    uid: str
    kind: str
    vid: str
    request: dict[str, Any]
    status: str
    error: str | None
    percent: int
    duration_ms: int | None
    created_at: float
    started_at: float | None
    updated_at: float
    result: dict[str, Any] | None = None


class Backend(Protocol):
    """What a runner needs from a queue (local database or remote queue API)."""

    def claim(self, owner: str, n: int, kinds: Sequence[str] = ...) -> list[Lease]: ...
    def touch(self, job_id: str, token: str) -> bool: ...
    def lost(self, leases: Iterable[tuple[str, str]]) -> set[str]: ...
    def record_segment(self, job_id: str, token: str, op: str, index: int, segment: dict[str, Any]) -> bool: ...
    def record_op(self, job_id: str, token: str, op: str, result: dict[str, Any]) -> bool: ...
    def record_callback(self, job_id: str, token: str, msg_id: str, url: str, body: dict[str, Any]) -> bool: ...
    def record_progress(self, job_id: str, token: str, percent: int, duration_ms: int | None = None,
                        live: LiveState | None = None) -> bool: ...
    def finish(self, job_id: str, token: str, result: dict[str, Any] | None = None,
               error: str | None = None, retryable: bool = False) -> bool: ...
    def release(self, job_id: str, token: str) -> bool: ...
    def close_thread(self) -> None: ...
