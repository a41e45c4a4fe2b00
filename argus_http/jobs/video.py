"""One async video job (CONTRACT §7): the engine's events → segment/op callbacks → ``finish``.

A closed segment → ``hookURL_segment``, a finished op → the op's ``hookURL``, the end → ``params.hookURL``
(written by the queue with ``finish``). Kept cuts are saved as JPEG first when the request has
``params.save`` (CONTRACT §10), so the callbacks carry their uris.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from typing import Any

import msgspec

from argus_core import verdict
from argus_core.errors import ArgusError
from argus_core.events import JobFinished, LiveStatus, OpFinished, Progress, SegmentClosed
from argus_core.request import VideoRequest, is_live_request, parse_request

from ..net.sources import engine_source, with_source
from ..queue.protocol import CANCELLED_MESSAGE, LiveState
from ..save import CutSaver
from ..tenancy import scoped_request
from .running import Context, EngineJob, Running, retryable

#: No engine event for this long → the job is cancelled and retried elsewhere.
STALL_TIMEOUT = 600.0
#: A live job's connection is written to the job at most this often (and at once when it connects or drops):
#: the job GET's ``live`` is at most this stale, and a 24 h stream costs ~43,000 small updates, not 86,000.
LIVE_WRITE_EVERY_S = 2.0


def run(ctx: Context, r: Running) -> None:
    """Execute one leased video job (called on the job's thread)."""
    lease = r.lease
    try:
        # Validated at submit; parsed once here for what the service itself reads (source, save).
        req = parse_request(lease.request, None, max_interval=float("inf"))
        uri = engine_source(req.data.uri, ctx.s, ctx.guard)
        body = scoped_request(with_source(lease.request, uri), lease.uid if ctx.s.auth_enabled else None)
        live = is_live_request(req)
        # a live job rescheduled after its worker died: the job clock continues, offsets keep growing (issue 12)
        handle = ctx.engine.submit(body, job_id=lease.job_id, start_ms=lease.resume_ms if live else 0)
    except ArgusError as exc:
        r.end(error=exc.message, retry=retryable(exc.status, exc.message), detail=exc.detail)
        return
    r.handle = handle
    if r.lost or r.releasing:
        handle.cancel()
    saver = _saver(ctx, req, lease.vid, uri)
    try:
        follow(ctx, r, handle, saver, live=live)
    finally:
        if saver is not None:
            saver.close()


def _saver(ctx: Context, req: VideoRequest, vid: str, source: str) -> CutSaver | None:
    """A frame saver when the request has ``params.save`` (CONTRACT §10) and a store is configured."""
    save = req.params.save
    if ctx.store is None or save is None:
        return None
    return CutSaver(ctx.store, source, save.prefix, vid, getattr(ctx.engine, "source_options", None))


def policies(request: dict[str, Any], s: Any) -> dict[str, verdict.Policy]:
    """The job's verdict policies (CONTRACT §14). Checked at submit; should they fail now (the server's
    config changed), the ops get the built-in ones rather than a failed job."""
    try:
        return verdict.policies_of(request, s.verdict_policy)
    except ArgusError:
        return {}


def follow(ctx: Context, r: Running, handle: EngineJob, saver: CutSaver | None, live: bool = False) -> None:
    """Map the engine job's events to callbacks and, at the end, to ``finish``.

    A segment's callback id is its index (a re-run of a file job closes the same segments: the same ids, sent
    once). A live job resumed on another worker closes new segments from index 0 again, so there the id is the
    segment's start on the job clock, which only grows across runs (issue 12)."""
    lease, be = r.lease, ctx.backend
    seg_index: dict[str, int] = defaultdict(int)
    final: JobFinished | None = None
    frames_seen = 0
    pol = policies(lease.request, ctx.s)
    connection = _LiveWriter(ctx, r)
    try:
        for ev in handle.events(timeout=STALL_TIMEOUT):
            if isinstance(ev, SegmentClosed):
                i = ev.segment.offset_begin if live else seg_index[ev.op]
                seg_index[ev.op] += 1
                seg = msgspec.to_builtins(ev.segment)
                verdict.annotate_segment(seg, pol.get(ev.op) or verdict.policy_for(ev.op))
                if saver is not None and not r.lost:
                    saver.cuts(seg["cuts"])  # saved before the callback, so it carries the uris
                if not r.lost and not be.record_segment(lease.job_id, lease.token, ev.op, i, seg):
                    r.lose()
            elif isinstance(ev, OpFinished):
                res = msgspec.to_builtins(ev.result)
                verdict.annotate_op(res, pol.get(ev.op) or verdict.policy_for(ev.op))
                if saver is not None and not r.lost:
                    saver.op_result(res)
                if not r.lost and not be.record_op(lease.job_id, lease.token, ev.op, res):
                    r.lose()
            elif isinstance(ev, Progress):
                ctx.metrics.frames(ev.frames - frames_seen)
                frames_seen = ev.frames
            elif isinstance(ev, LiveStatus):
                connection.update(ev)
            elif isinstance(ev, JobFinished):
                final = ev
    except TimeoutError:
        handle.cancel()
        r.end(error="internal error", retry=True, detail="engine stalled")
        return
    assert final is not None
    ctx.metrics.frames(final.frames - frames_seen)
    if final.error is not None:
        if final.cancelled and not r.releasing:
            r.end(error=CANCELLED_MESSAGE)
        else:
            r.end(error=final.error.message, retry=retryable(final.error.status, final.error.message))
    else:
        result = msgspec.to_builtins(final.result or {})
        verdict.annotate(result, pol)
        if saver is not None:
            saver.job_result(result)
        r.end(result=result)


class _LiveWriter:
    """Writes a live job's connection to the job (issue 12): at once when it connects or drops or reconnects,
    else at most every :data:`LIVE_WRITE_EVERY_S`; the offset in it is where a rescheduled run resumes."""

    def __init__(self, ctx: Context, r: Running) -> None:
        self.ctx, self.r = ctx, r
        self.last: LiveState | None = None
        self.written_at = -math.inf

    def update(self, ev: LiveStatus) -> None:
        state = LiveState(connected=ev.connected, reconnects=ev.reconnects, last_frame_at=ev.last_frame_at,
                          lag_ms=ev.lag_ms, offset_ms=ev.offset_ms if ev.offset_ms is not None else
                          (self.last.offset_ms if self.last is not None else None))
        changed = self.last is None or (state.connected, state.reconnects) != (self.last.connected,
                                                                               self.last.reconnects)
        if self.last is not None and self.last.reconnects < state.reconnects:
            self.ctx.metrics.add("live_reconnects", state.reconnects - self.last.reconnects)
        self.last = state
        now = time.monotonic()
        if self.r.lost or not (changed or now - self.written_at >= LIVE_WRITE_EVERY_S):
            return
        self.written_at = now
        lease = self.r.lease
        if not self.ctx.backend.record_progress(lease.job_id, lease.token, 0, None, live=state):
            self.r.lose()
