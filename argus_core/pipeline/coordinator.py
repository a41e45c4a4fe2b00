"""The coordinator: one thread in the parent that does all bookkeeping, so no lock guards its state.

It waits on every child's pipe and process sentinel at once, hands free ring slots to decoders, dispatches
decoded slots to the least-busy inference worker (:mod:`.scheduler`), orders results by sequence number
per job, feeds them through the §4–§6 aggregators, emits events, and tells a decoder to stop when every op
of its job is done (CONTRACT §6 early termination). API calls from other threads only post commands.

Failures stay where they happen: a child that dies (even with ``kill -9``) costs only the jobs it held
(the supervisor restarts it); an exception while handling one job's message fails only that job, and the
loop goes on — nothing a request carries can stop the engine for everyone.
"""

from __future__ import annotations

import logging
import queue
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any, Callable, NamedTuple

from ..aggregate import OpAggregator
from ..errors import ArgusError, Cancelled, EngineError, from_wire
from ..events import Discontinuity, ErrorInfo, JobFinished, LiveStatus, OpFinished, Progress, SegmentClosed
from ..media.renditions import FrameSpec, unique_specs
from ..request import VideoRequest, is_live_request, sampling_of
from ..result import CutIn, CutOutput, OpResult
from .job import Job
from . import messages as m
from .messages import (DecodeDone, DecodeJob, ErrorWire, Sides, ForgetJob, FrameBatch, FrameReady, FrameWork,
                       GrantSlots, JobParams, LiveBreak, LivePlan, Results, StopJob, VideoMeta, WorkerReady)
from .ring import FrameRing
from .scheduler import READY, Pending, SlotBook, dispatch, grant_slots, idle_decoders
from .supervisor import Child, Supervisor

log = logging.getLogger("argus.engine")

#: seconds between two Progress events of one job
PROGRESS_EVERY_S = 0.5


# -- commands from API threads ------------------------------------------------------------------------
class Submit(NamedTuple):
    key: int
    job: Job
    request: VideoRequest
    start_ms: int = 0  #: live jobs: where the job clock starts (a resumed job continues its offsets)


class Cancel(NamedTuple):
    key: int


class Stop(NamedTuple):
    """End a job early with its result (:meth:`Job.stop`): its decoder stops, what it posted is analysed."""

    key: int


class Close(NamedTuple):
    pass


@dataclass(frozen=True)
class Limits:
    """Per-job limits the decoders apply (CONTRACT §11), and the frame-threads rule."""

    max_gap: float
    max_frames: int
    max_duration: float
    open_timeout: float
    frame_threads: Callable[[int], bool | None]  # busy decoders (itself included) → the job's setting
    live_max_duration: float = 0.0  #: operator cap on one live job's run, seconds (0: none)


def live_plan(req: VideoRequest, limits: Limits, start_ms: int) -> LivePlan | None:
    """The decoder's plan for a live request (None for a finite video). The stall bound is
    max(5 s, 2 × interval) (issue 12), 10 s at least for HLS, whose segments arrive seconds apart."""
    if not is_live_request(req):
        return None
    vf = req.params.vframe
    interval = vf.interval if vf is not None and vf.mode == 0 and vf.interval else 0.0
    stall = max(5.0, 2.0 * interval)
    if req.data.uri.lower().split("?")[0].endswith(".m3u8"):
        stall = max(stall, 10.0)
    timeout = req.params.live.timeout if req.params.live is not None and req.params.live.timeout else 0.0
    return LivePlan(stall_s=stall, timeout_s=float(timeout), max_s=limits.live_max_duration, start_ms=start_ms,
                    http_live=req.params.live is not None)


def sides_plan(req: VideoRequest, ops: dict[str, Any]) -> Sides | None:
    """Which neighbour frames a job's decoder adds to each cut (pure; table-tested).

    Only in interval mode (ORIGINAL-BEHAVIOUR.md §2: "Keyframe mode: no aggregation"), only for a finite video
    (on a live source the frame after a cut would hold its result back), and only when the grid is at least
    as wide as the distance: a finer grid already samples every frame the neighbours would add, and the
    decoder then never waits on more than one cut."""
    vf = req.params.vframe
    if vf is None or vf.mode != 0 or not vf.interval or is_live_request(req):
        return None
    wanted = [(ops[o.op].neighbours_ms, ops[o.op].neighbour_specs_for(o.params)) for o in req.ops]
    wanted = [(ms, specs) for ms, specs in wanted if ms and specs]
    if not wanted:
        return None
    ms = max(ms for ms, _ in wanted)
    if vf.interval * 1000 < ms:
        return None
    return Sides(ms, unique_specs(s for _, specs in wanted for s in specs))


@dataclass
class JobState:
    key: int
    job: Job
    request: VideoRequest
    ops: list[str]
    specs: tuple[FrameSpec, ...]
    aggs: dict[str, OpAggregator]
    active: list[str]
    sides: Sides | None = None
    offsets: dict[int, int] = field(default_factory=dict)
    buffer: dict[int, tuple[dict[str, CutOutput], ErrorWire | None]] = field(default_factory=dict)
    next_seq: int = 0
    total: int | None = None
    decoder: int | None = None
    duration_ms: int | None = None
    last_progress: float = 0.0
    start_ms: int = 0
    breaks: dict[int, LiveBreak] = field(default_factory=dict)  #: live: clock re-anchored before frame seq

    @property
    def params(self) -> dict[str, Any]:
        return {o.op: o.params for o in self.request.ops}


def progress_of(st: JobState, offset: int) -> Progress:
    """Position and percent of a job within its window ``[ss, ss+t)`` ∩ the video."""
    vf = st.request.params.vframe
    start = int((vf.ss or 0) * 1000) if vf else 0
    end = st.duration_ms
    if vf and vf.t:
        end = min(end, start + int(vf.t * 1000)) if end else start + int(vf.t * 1000)
    pct = None
    if end and end > start:
        pct = round(max(0.0, min(100.0, 100.0 * (offset - start) / (end - start))), 1)
    return Progress(job_id=st.job.id, frames=st.next_seq, position_ms=offset, duration_ms=end, percent=pct)


class Coordinator:
    """Runs :meth:`run` on its own thread; other threads call :meth:`post` only."""

    def __init__(self, supervisor: Supervisor, ring: FrameRing, ops: dict[str, Any], limits: Limits,
                 max_batch: int, wake: tuple[Any, Any]) -> None:
        self.sup = supervisor
        self.ring = ring
        self.ops = ops
        self.limits = limits
        self.max_batch = max_batch
        self.book = SlotBook(ring.slots)
        self.pending: deque[Pending] = deque()
        self.jobs: dict[int, JobState] = {}
        self.waiting: deque[int] = deque()
        self.cmds: queue.SimpleQueue[Submit | Cancel | Close] = queue.SimpleQueue()
        self._wake_r, self._wake_w = wake
        self.stats = {"frames": 0, "decoded": 0, "jobs": 0, "max_lead": 0}
        self.alive = True
        #: monotonic time of the loop's last turn (it turns at least every second: poll_children's timeout)
        self.beat = time.monotonic()

    # -- API side -------------------------------------------------------------------------------------
    def post(self, cmd: Submit | Cancel | Close) -> None:
        self.cmds.put(cmd)
        try:
            self._wake_w.send_bytes(b"!")
        except OSError:
            pass

    # -- the loop -------------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while True:
                self.beat = time.monotonic()
                self.poll_children()
                if not self.run_commands():
                    self.shutdown_jobs()
                    return
                self.schedule()
        except Exception:  # a bug outside any one job must not hang every caller
            log.exception("coordinator crashed")
            self.alive = False
            self.shutdown_jobs(EngineError("engine failure"))
        finally:
            self.alive = False

    def poll_children(self, timeout: float = 1.0) -> None:
        conns: dict[Any, Child] = {}
        for c in self.sup.children:
            conns[c.chan.conn] = c
            conns[c.proc.sentinel] = c
        for obj in wait([self._wake_r, *conns], timeout=timeout):
            if obj is self._wake_r:
                while self._wake_r.poll():
                    self._wake_r.recv_bytes()
                continue
            child = conns[obj]
            if obj is child.chan.conn:
                self.drain(child)
            elif not child.alive and child in self.sup.children:
                self.drain(child)
                self.on_crash(child)

    def run_commands(self) -> bool:
        """Apply posted commands; False once asked to close."""
        while True:
            try:
                cmd = self.cmds.get_nowait()
            except queue.Empty:
                return True
            if isinstance(cmd, Close):
                return False
            with self.guard(cmd.key, cmd.job if isinstance(cmd, Submit) else None):
                if isinstance(cmd, Submit):
                    self.on_submit(cmd)
                elif isinstance(cmd, Stop):
                    self.on_stop(cmd.key)
                else:
                    st = self.jobs.get(cmd.key)
                    if st is not None:
                        self.finish(st, error=Cancelled(), cancelled=True)

    def on_stop(self, key: int) -> None:
        """The decoder stops; its DecodeDone then says how many frames there are, and the job finishes once
        those are analysed (the path of a video that ends). A job not yet decoding ends at once."""
        st = self.jobs.get(key)
        if st is None:
            return
        if st.decoder is not None:
            self.sup.decoders[st.decoder].send(StopJob(st.key))
        elif st.total is None:
            st.total = st.next_seq
            self.advance(st)

    def guard(self, key: int, job: Job | None = None) -> "_JobGuard":
        """Confine an exception while handling job ``key`` to that job (``job``: one not yet in the books)."""
        return _JobGuard(self, key, job)

    def drain(self, child: Child) -> None:
        try:
            while child.chan.poll():
                msg = child.chan.recv()
                if child.kind == "decoder":
                    self.on_decoder(child, msg)
                else:
                    self.on_worker(child, msg)
        except (EOFError, OSError):
            pass  # the sentinel reports the death

    # -- jobs -----------------------------------------------------------------------------------------
    def on_submit(self, cmd: Submit) -> None:
        req = cmd.request
        names = [o.op for o in req.ops]
        st = JobState(
            key=cmd.key, job=cmd.job, request=req, ops=names,
            specs=unique_specs(s for o in req.ops for s in self.ops[o.op].specs_for(o.params)),
            aggs={o.op: OpAggregator(o.params, req.params.segment) for o in req.ops},
            active=list(names), start_ms=cmd.start_ms, sides=sides_plan(req, self.ops),
        )
        self.jobs[cmd.key] = st
        self.waiting.append(cmd.key)
        self.stats["jobs"] += 1
        for w in self.sup.workers:
            w.send(self.job_params(st))

    @staticmethod
    def job_params(st: JobState) -> JobParams:
        return JobParams(st.key, st.params, st.specs, st.sides.specs if st.sides is not None else ())

    def on_decoder(self, d: Child, msg: object) -> None:
        if isinstance(msg, FrameReady):
            d.slots.discard(msg.slot)
            self.stats["decoded"] += 1
            st = self.jobs.get(msg.key)
            if st is None or not st.active:
                self.book.release(msg.slot)
                return
            st.offsets[msg.seq] = msg.offset_ms
            self.stats["max_lead"] = max(self.stats["max_lead"], self.stats["decoded"] - self.stats["frames"])
            self.book.mark(msg.slot, READY)
            self.pending.append(Pending(msg.slot, msg.key, msg.seq))
        elif isinstance(msg, VideoMeta):
            st = self.jobs.get(msg.key)
            if st is not None:
                st.duration_ms = msg.duration_ms
        elif isinstance(msg, LiveBreak):
            st = self.jobs.get(msg.key)
            if st is not None:
                with self.guard(st.key):
                    st.breaks[msg.seq] = msg
                    self.advance(st)
        elif isinstance(msg, m.LiveStatus):
            st = self.jobs.get(msg.key)
            if st is not None:
                st.job.deliver(LiveStatus(st.job.id, msg.connected, msg.reconnects, msg.last_frame_at, msg.lag_ms,
                                          msg.reason, msg.offset_ms, msg.source_pts_ms))
        elif isinstance(msg, DecodeDone):
            d.job = None
            for slot in msg.returned:
                if slot in d.slots:
                    d.slots.discard(slot)
                    self.book.release(slot)
            st = self.jobs.get(msg.key)
            if st is None:
                return
            with self.guard(st.key):
                st.decoder = None
                st.total = msg.frames
                if msg.error is not None:
                    self.finish(st, error=from_wire(msg.error))
                else:
                    self.advance(st)

    def on_worker(self, w: Child, msg: object) -> None:
        if isinstance(msg, WorkerReady):
            self.on_ready(w, msg)
            return
        assert isinstance(msg, Results)
        for r in msg.items:
            w.slots.discard(r.slot)
            self.book.release(r.slot)
            st = self.jobs.get(r.key)
            if st is None:
                continue
            with self.guard(st.key):
                st.buffer[r.seq] = (r.outputs, r.error)
                self.advance(st)
        self.stats["frames"] += len(msg.items)

    def on_ready(self, w: Child, msg: WorkerReady) -> None:
        w.ready = True
        w.info = {"pid": msg.info.pid, "device": msg.info.device, "cupy_imported": msg.info.cupy_imported}
        for name, reason in msg.problems.items():
            if name in self.ops:
                # An op that needs an operator setting nobody gave (politician without a gallery) is not an
                # error of this start-up: it is simply unavailable until configured.
                level = logging.INFO if reason.startswith("NotConfigured") else logging.ERROR
                log.log(level, "op %s unavailable: %s", name, reason)
                self.on_op_unusable(name, reason)

    #: set by the engine: an op a worker could not load is taken out of service
    on_op_unusable: Callable[[str, str], None] = staticmethod(lambda name, reason: None)  # type: ignore[assignment]

    def advance(self, st: JobState) -> None:
        """Feed in-order results through the aggregators; finish or stop the job when it is done."""
        while st.key in self.jobs:
            if st.breaks:
                self.apply_break(st)
            if st.next_seq not in st.buffer:
                break
            outputs, error = st.buffer.pop(st.next_seq)
            offset = st.offsets.pop(st.next_seq)
            st.next_seq += 1
            if error is not None:
                self.finish(st, error=from_wire(error))
                return
            self.aggregate(st, offset, outputs)
            self.maybe_progress(st, offset)
        if st.key not in self.jobs:
            return
        if not st.active:
            self.finish(st)  # every op reached its terminate threshold: stop decoding now
        elif st.total is not None and st.next_seq >= st.total:
            self.finish(st)

    def apply_break(self, st: JobState) -> None:
        """A live discontinuity before the next frame: every frame before it is aggregated, so the segments
        still open close here (they must not span the gap), and the job hears where."""
        brk = st.breaks.pop(st.next_seq, None)
        if brk is None:
            return
        for name in list(st.active):
            agg = st.aggs[name]
            for seg in agg.close_open():
                st.job.deliver(SegmentClosed(st.job.id, name, seg))
            if agg.stopped:
                st.active.remove(name)
                st.job.deliver(OpFinished(st.job.id, name, agg.result(), terminated=True))
        st.job.deliver(Discontinuity(st.job.id, brk.offset_ms, brk.reason))

    def aggregate(self, st: JobState, offset: int, outputs: dict[str, CutOutput]) -> None:
        for name in list(st.active):
            out = outputs.get(name)
            if out is None:
                continue
            agg = st.aggs[name]
            for seg in agg.add(CutIn(offset=offset, labels=out.labels, result=out.result)):
                st.job.deliver(SegmentClosed(st.job.id, name, seg))
            if agg.stopped:
                st.active.remove(name)
                st.job.deliver(OpFinished(st.job.id, name, agg.result(), terminated=True))

    def finish(self, st: JobState, error: ArgusError | None = None, cancelled: bool = False) -> None:
        if self.jobs.pop(st.key, None) is None:
            return
        if st.decoder is not None:
            self.sup.decoders[st.decoder].send(StopJob(st.key))
        try:
            self.waiting.remove(st.key)
        except ValueError:
            pass
        for w in self.sup.workers:
            w.send(ForgetJob(st.key))
        result: dict[str, OpResult] | None = None
        if error is None:
            try:
                result = self.final_results(st)
            except Exception as exc:  # one job's aggregation bug fails that job only
                log.exception("job %s: final aggregation failed", st.job.id)
                result, error = None, EngineError(detail=f"{type(exc).__name__}: {exc}")
        if error is not None:
            log.info("job %s ended: %s (%s)", st.job.id, error.message, error.detail)
        st.job.deliver(JobFinished(
            job_id=st.job.id, result=result, cancelled=cancelled, frames=st.next_seq,
            error=None if error is None else ErrorInfo(status=error.status, message=error.message),
        ), error)

    def final_results(self, st: JobState) -> dict[str, OpResult]:
        result = {}
        for name in st.ops:
            agg = st.aggs[name]
            if name in st.active:
                for seg in agg.finish():
                    st.job.deliver(SegmentClosed(st.job.id, name, seg))
                st.job.deliver(OpFinished(st.job.id, name, agg.result()))
            result[name] = agg.result()
        return result

    def maybe_progress(self, st: JobState, offset: int) -> None:
        now = time.monotonic()
        if now - st.last_progress < PROGRESS_EVERY_S:
            return
        st.last_progress = now
        st.job.deliver(progress_of(st, offset))

    def shutdown_jobs(self, error: ArgusError | None = None) -> None:
        for st in list(self.jobs.values()):
            self.finish(st, error=error or EngineError("engine closed"))

    # -- scheduling -----------------------------------------------------------------------------------
    def schedule(self) -> None:
        self.start_waiting_jobs()
        busy = [d for d in self.sup.decoders if d.job is not None]
        for index, slots in grant_slots(self.book, busy).items():
            self.sup.decoders[index].send(GrantSlots(slots))
        batches = dispatch(self.pending, self.sup.workers, 2 * self.max_batch, self.active_ops, self.book)
        for index, items in batches.items():
            self.sup.workers[index].send(FrameBatch([FrameWork(p.slot, p.key, p.seq, ops) for p, ops in items]))

    def active_ops(self, key: int) -> tuple[str, ...] | None:
        st = self.jobs.get(key)
        return tuple(st.active) if st is not None and st.active else None

    def start_waiting_jobs(self) -> None:
        for d in idle_decoders(self.sup.decoders):
            if not self.waiting:
                return
            key = self.waiting.popleft()
            st = self.jobs[key]
            with self.guard(key):
                decoding = 1 + sum(1 for other in self.sup.decoders if other.job is not None)
                lim = self.limits
                live = live_plan(st.request, lim, st.start_ms)
                msg = DecodeJob(key, st.request.data.uri, sampling_of(st.request, lim.max_gap), st.specs,
                                lim.open_timeout, lim.max_frames, lim.max_duration,
                                False if live is not None else lim.frame_threads(decoding), live, st.sides)
                d.job = key  # only once the message is built: a failure above leaves the decoder idle
                st.decoder = d.index
                d.send(msg)

    # -- failures -------------------------------------------------------------------------------------
    def on_crash(self, child: Child) -> None:
        code = child.proc.exitcode
        log.error("%s %d died (exit code %s); restarting it", child.kind, child.index, code)
        lost = set(child.slots)
        child.slots.clear()
        for slot in lost:
            self.book.release(slot)
        if child.kind == "worker":
            for key in {self.ring.meta(slot)["job"] for slot in lost}:  # the ring header names each slot's job
                st = self.jobs.get(key)
                if st is not None:
                    self.finish(st, error=EngineError("inference worker crashed", detail=f"exit code {code}"))
            new = self.sup.restart(child)
            for key, st in self.jobs.items():
                new.send(self.job_params(st))
        else:
            key = child.job
            st = self.jobs.get(key) if key is not None else None
            if st is not None:
                st.decoder = None
                self.finish(st, error=EngineError("decoder crashed", detail=f"exit code {code}"))
            self.sup.restart(child)


class _JobGuard:
    """``with coordinator.guard(key):`` — an exception inside fails job ``key`` alone (logged with its
    traceback), and the coordinator goes on."""

    def __init__(self, coord: Coordinator, key: int, job: Job | None = None) -> None:
        self.coord, self.key, self.job = coord, key, job

    def __enter__(self) -> None:
        return None

    def __exit__(self, etype: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        log.error("job %s failed inside the coordinator: %s: %s", self.key, type(exc).__name__, exc, exc_info=exc)
        st = self.coord.jobs.get(self.key)
        if st is None and self.job is not None and not self.job.done:
            err = EngineError(detail=f"{type(exc).__name__}: {exc}")
            self.job.deliver(JobFinished(job_id=self.job.id, result=None,
                                         error=ErrorInfo(status=err.status, message=err.message)), err)
        if st is not None:
            try:
                self.coord.finish(st, error=EngineError(detail=f"{type(exc).__name__}: {exc}"))
            except Exception:  # pragma: no cover - finishing itself failed: drop the job
                self.coord.jobs.pop(self.key, None)
        return True
