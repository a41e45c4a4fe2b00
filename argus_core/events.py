"""Events a running job emits to its embedder (``Job.events()``), in order.

``SegmentClosed`` for every segment as it closes, ``OpFinished`` once per op (terminated early or at the
end), ``Progress`` now and then, for live jobs ``Discontinuity`` and ``LiveStatus``, and exactly one
``JobFinished`` last.
"""

from __future__ import annotations

from typing import Any, Union

import msgspec

from .result import OpResult, Segment


class Progress(msgspec.Struct, tag=True):
    job_id: str
    frames: int
    position_ms: int
    duration_ms: int | None
    percent: float | None


class SegmentClosed(msgspec.Struct, tag=True):
    job_id: str
    op: str
    segment: Segment


class OpFinished(msgspec.Struct, tag=True):
    job_id: str
    op: str
    result: OpResult
    terminated: bool = False


class ErrorInfo(msgspec.Struct):
    status: int
    message: str


class JobFinished(msgspec.Struct, tag=True):
    """``result`` maps op → {labels, segments} (the sync response); ``error`` is set on failure."""

    job_id: str
    result: dict[str, OpResult] | None
    error: ErrorInfo | None = None
    cancelled: bool = False
    frames: int = 0


class Discontinuity(msgspec.Struct, tag=True):
    """Live jobs (issue 12): the media clock re-anchored at ``offset_ms`` (reconnect, pts jump, resume);
    segments open before it were closed there."""

    job_id: str
    offset_ms: int
    reason: str


class LiveStatus(msgspec.Struct, tag=True):
    """Live jobs: the source's connection now (``GET /v1/jobs/video/<id>`` shows it as ``live``)."""

    job_id: str
    connected: bool
    reconnects: int
    last_frame_at: float | None = None  #: epoch seconds
    lag_ms: int | None = None
    reason: str = ""
    #: the job-clock offset of the last frame sent: a job resumed elsewhere passes ``start_ms`` past it
    offset_ms: int | None = None
    #: that frame's own timestamp in the stream (ms, the encoder's timeline): with ``offset_ms`` it ties job
    #: offsets to the source's until the next :class:`Discontinuity`
    source_pts_ms: int | None = None


Event = Union[Progress, SegmentClosed, OpFinished, JobFinished, Discontinuity, LiveStatus]


def result_dict(result: dict[str, OpResult] | None) -> dict[str, Any]:
    return msgspec.to_builtins(result or {})
