"""The Engine: owns the ring, the decoder and inference processes, and the coordinator thread.

One coordinator thread in the parent does all bookkeeping, so no lock guards the state below: it waits on
every child's pipe and process sentinel at once, hands free ring slots to decoders, dispatches decoded
slots to the least-busy inference worker, orders results by sequence number per job, feeds them through
the §4–§6 aggregators, emits events, and tells a decoder to stop when every op of its job is done. API
calls from other threads only post commands to it.

A child that dies (even with ``kill -9``) costs only the jobs it held: the parent knows exactly which slots
it had been given, takes them back, fails those jobs with a clear error and starts a replacement.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing as mp
import os
import queue
import secrets
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any, Iterator, Mapping

import msgspec

from .aggregate import OpAggregator
from .errors import ArgusError, BadOp, Cancelled, EngineError
from .events import ErrorInfo, Event, JobFinished, OpFinished, Progress, SegmentClosed
from .frames import FrameSpec, slot_bytes_for, unique_specs
from .ops import create_op, op_classes
from .procs import decoder_main, rebuild_error, worker_main
from .request import VideoRequest, parse_request, sampling_of
from .result import CutIn, OpResult
from .ring import FrameRing

log = logging.getLogger("argus.engine")

_FREE, _DECODER, _READY, _WORKER = range(4)


@dataclass
class _Child:
    kind: str
    index: int
    proc: Any
    conn: Connection
    slots: set[int] = field(default_factory=set)  # decoder: granted; worker: in flight
    job: int | None = None  # decoder: the job it decodes
    ready: bool = False
    info: dict = field(default_factory=dict)  # worker: pid, device, …


@dataclass
class _JobState:
    key: int
    job: "Job"
    request: VideoRequest
    ops: list[str]
    specs: tuple[FrameSpec, ...]
    aggs: dict[str, OpAggregator]
    active: list[str]
    offsets: dict[int, int] = field(default_factory=dict)
    buffer: dict[int, tuple[dict, tuple | None]] = field(default_factory=dict)
    next_seq: int = 0
    total: int | None = None
    decoder: int | None = None
    duration_ms: int | None = None
    last_progress: float = 0.0


class Job:
    """A submitted analysis. Iterate ``events()`` or wait for ``result()``; ``cancel()`` stops it."""

    def __init__(self, engine: "Engine", job_id: str, key: int) -> None:
        self.id = job_id
        self._engine = engine
        self._key = key
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._done = threading.Event()
        self._final: JobFinished | None = None
        self._error: ArgusError | None = None

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def events(self, timeout: float | None = None) -> Iterator[Event]:
        """Events in order, ending with exactly one :class:`JobFinished` (``timeout`` per event)."""
        while True:
            try:
                ev = self._events.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"no event from job {self.id} in {timeout} s") from None
            yield ev
            if isinstance(ev, JobFinished):
                return

    def cancel(self) -> None:
        """Stop the job; decoding stops at the next frame. Harmless on a finished job."""
        self._engine._post(("cancel", self._key))

    def wait(self, timeout: float | None = None) -> JobFinished:
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} not finished in {timeout} s")
        assert self._final is not None
        return self._final

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The sync response body ``{op: {labels, segments}}``; raises the job's error."""
        final = self.wait(timeout)
        if final.error is not None:
            raise self._error or _error_from(final.error)
        return msgspec.to_builtins(final.result or {})

    def _emit(self, ev: Event) -> None:
        self._events.put(ev)
        if isinstance(ev, JobFinished):
            self._final = ev
            self._done.set()


def frame_threads_rule(cores: int, decoding: int, workers: int, forced: bool | None = None) -> bool | None:
    """Whether a job's decoder may use FFmpeg frame threads: ``forced`` if given; else False when busy
    decoders and the inference workers already take every core, else None (the sampler decides per file).

    Measured on 2 cores (one decoder, one worker, dense 720p sampling, bench/RESULTS.md): frame threads
    there only steal from inference (0.76–0.83× vs 0.87–0.90× of the ideal overlap). On a larger machine a
    lone job still gets them, and they go away as more jobs decode at once."""
    if forced is not None:
        return forced
    return None if decoding + workers < cores else False


class Engine:
    """Video analysis engine (a context manager). Start once, analyse many videos, from many threads.

    ``decoders``: decoder processes (default: CPU cores − 1, at least 1); ``workers``: inference processes
    (default 1); ``ops``: op names to load (default: every op whose models are present and verified).
    Limits (CONTRACT §11): ``max_interval``, ``max_frames`` per job (samples spread evenly beyond it),
    ``max_duration`` of a video in seconds, ``open_timeout`` for network sources, ``max_gap`` between
    keyframe-mode samples. ``frame_threads``: FFmpeg frame threads in the decoders; None (default) decides
    per job with :func:`frame_threads_rule` (off while busy decoders and workers take every core); True /
    False force them. ``source_options``: extra
    FFmpeg options for network sources (the service sets ``http_proxy`` to its SSRF-checking proxy).
    """

    def __init__(
        self,
        decoders: int | None = None,
        workers: int | None = None,
        *,
        ops: list[str] | None = None,
        models_dir: str | Path | None = None,
        slots: int | None = None,
        max_batch: int = 8,
        max_wait_ms: float = 4.0,
        threads: int = 1,
        max_interval: float = 10.0,
        max_gap: float = 10.0,
        max_frames: int = 3000,
        max_duration: float = 6 * 3600,
        open_timeout: float = 30.0,
        options: dict[str, Any] | None = None,
        frame_threads: bool | None = None,
        source_options: dict[str, str] | None = None,
    ) -> None:
        cores = os.cpu_count() or 1
        self.n_decoders = max(1, decoders if decoders is not None else cores - 1)
        self.n_workers = max(1, workers if workers is not None else 1)
        self.models_dir = str(models_dir) if models_dir else None
        #: operator settings handed to every op (galleries folder, keyword lists, …)
        self.options: dict[str, Any] = dict(options or {})
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max_wait_ms / 1000.0
        self.threads = threads
        self.max_interval = max_interval
        self.max_gap = max_gap
        self.max_frames = max_frames
        self.max_duration = max_duration
        self.open_timeout = open_timeout
        self.unavailable: dict[str, str] = {}
        self._ops: dict[str, Any] = {}
        mdir = Path(self.models_dir) if self.models_dir else None
        classes = op_classes(mdir)
        for name in ops if ops is not None else list(classes):
            if name not in classes:
                raise BadOp(detail=f"unknown op {name!r}")
            try:
                self._ops[name] = create_op(name, mdir, self.options)
            except Exception as exc:
                self.unavailable[name] = f"{type(exc).__name__}: {exc}"
                log.warning("op %s unavailable: %s", name, exc)
        all_specs = unique_specs(s for op in self._ops.values() for s in op.specs())
        self.slot_bytes = max(slot_bytes_for(all_specs), 64)
        self.n_slots = slots or max(8, 2 * self.max_batch * self.n_workers + 2 * self.n_decoders)
        self._ctx = mp.get_context("spawn")
        self._cores = cores
        self._frame_threads: bool | None = frame_threads  # None: frame_threads_for decides per job
        self.source_options: dict[str, str] = dict(source_options or {})
        self._ring = FrameRing.create(self.n_slots, self.slot_bytes)
        self._slot_state = [_FREE] * self.n_slots
        self._free: deque[int] = deque(range(self.n_slots))
        self._pending: deque[tuple[int, int, int]] = deque()  # decoded (slot, key, seq) awaiting a worker
        self._jobs: dict[int, _JobState] = {}
        self._waiting: deque[int] = deque()
        self._keys = itertools.count(1)
        self._cmds: queue.SimpleQueue[tuple] = queue.SimpleQueue()
        self._wake_r, self._wake_w = self._ctx.Pipe(duplex=False)
        self._closed = False
        self._stats = {"frames": 0, "decoded": 0, "jobs": 0, "restarts": 0, "max_lead": 0}
        self._decoders = [self._start_decoder(i) for i in range(self.n_decoders)]
        self._workers = [self._start_worker(i) for i in range(self.n_workers)]
        self._await_workers_ready()
        self._thread = threading.Thread(target=self._run, name="argus-coordinator", daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(self, Engine._cleanup, self._ring, self._decoders, self._workers)

    # -- public API ----------------------------------------------------------------------------------
    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def known_ops(self) -> set[str]:
        """Ops this engine can run (models present and verified)."""
        return set(self._ops)

    def parse(self, body: bytes | str | Mapping[str, Any] | VideoRequest) -> VideoRequest:
        if isinstance(body, VideoRequest):
            return parse_request(msgspec.to_builtins(body), self.known_ops(), max_interval=self.max_interval)
        return parse_request(body if isinstance(body, (bytes, str)) else dict(body), self.known_ops(),
                             max_interval=self.max_interval)

    def submit(self, body: bytes | str | Mapping[str, Any] | VideoRequest, job_id: str | None = None) -> Job:
        """Validate and queue a request; returns at once. Raises the documented error on bad input."""
        if self._closed:
            raise EngineError("engine closed")
        req = self.parse(body)
        key = next(self._keys)
        job = Job(self, job_id or secrets.token_hex(12), key)
        self._post(("submit", key, job, req))
        return job

    def analyze(self, body: bytes | str | Mapping[str, Any] | VideoRequest, timeout: float | None = None) -> dict:
        """Run a request to the end; returns ``{op: {labels, segments}}`` (the sync response, CONTRACT §7)."""
        job = self.submit(body)
        try:
            return job.result(timeout)
        except TimeoutError:
            job.cancel()
            raise

    def stats(self) -> dict[str, int]:
        """Counters: frames decoded/inferred, jobs, child restarts, ``max_lead`` (most frames ever decoded
        but not yet inferred: bounded by the ring's slots), busy decoders."""
        busy = sum(1 for d in self._decoders if d.job is not None)
        return dict(self._stats, jobs_running=len(self._jobs), jobs_waiting=len(self._waiting),
                    decoders_busy=busy, slots=self.n_slots)

    def worker_info(self) -> list[dict]:
        """Per inference worker: pid, device ("cpu"/"cuda") and whether CuPy was imported."""
        return [dict(w.info) for w in self._workers]

    def child_pids(self) -> dict[str, list[int]]:
        """Process ids of the decoders and inference workers (for operators and fault tests)."""
        return {"decoders": [d.proc.pid for d in self._decoders], "workers": [w.proc.pid for w in self._workers]}

    @property
    def galleries(self) -> Any:
        """Face galleries (:class:`argus_core.gallery.GalleryStore`, created on first use) under
        ``options["galleries_dir"]``: groups, faces, search. Workers see changes on their next batch."""
        store = self.__dict__.get("_galleries")
        if store is None:
            from .gallery import GalleryStore

            store = self.__dict__.setdefault(
                "_galleries", GalleryStore(options=self.options, models_dir=self.models_dir, threads=self.threads))
        return store

    def close(self) -> None:
        """Stop every process and free the shared memory. Running jobs end with an error."""
        if self._closed:
            return
        self._closed = True
        self._post(("close",))
        self._thread.join(timeout=10)
        self._finalizer()

    # -- process management --------------------------------------------------------------------------
    @staticmethod
    @contextlib.contextmanager
    def _child_env() -> Iterator[None]:
        """Environment for spawned children only (restored for the embedding program afterwards).

        BLAS thread counts must be set before a child imports numpy. One thread each: parallelism comes
        from the processes, and two BLAS threads per worker on a 2-core box made a gallery search 4×
        slower under load."""
        saved = {}
        for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            saved[var] = os.environ.get(var)
            os.environ.setdefault(var, "1")
        try:
            yield
        finally:
            for var, value in saved.items():
                if value is None:
                    os.environ.pop(var, None)
                else:
                    os.environ[var] = value

    def _start_decoder(self, index: int) -> _Child:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=decoder_main, name=f"argus-decoder-{index}", daemon=True,
                                 args=(child, self._ring.name, self.n_slots, self._ring.slot_bytes,
                                       self.source_options))
        with self._child_env():
            proc.start()
        child.close()
        return _Child("decoder", index, proc, parent, ready=True)

    def _start_worker(self, index: int) -> _Child:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(
            target=worker_main, name=f"argus-worker-{index}", daemon=True,
            args=(child, self._ring.name, self.n_slots, self._ring.slot_bytes, list(self._ops),
                  self.models_dir, self.max_batch, self.max_wait_s, self.threads, self.options),
        )
        with self._child_env():
            proc.start()
        child.close()
        return _Child("worker", index, proc, parent)

    def _await_workers_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        for w in self._workers:
            if not w.conn.poll(max(0.0, deadline - time.monotonic())):
                self._finalizer_now()
                raise EngineError("inference worker did not start", detail="timeout loading models")
            try:
                msg = w.conn.recv()
            except EOFError:
                self._finalizer_now()
                raise EngineError("inference worker did not start") from None
            self._on_ready(w, msg)

    def _on_ready(self, w: _Child, msg: tuple) -> None:
        _, info, problems = msg
        w.ready = True
        w.info = info
        for name, reason in problems.items():
            if name in self._ops:
                log.error("op %s disabled: model not usable: %s", name, reason)
                self.unavailable[name] = reason
                del self._ops[name]

    def _finalizer_now(self) -> None:
        Engine._cleanup(self._ring, self._decoders, getattr(self, "_workers", []))

    @staticmethod
    def _cleanup(ring: FrameRing, decoders: list[_Child], workers: list[_Child]) -> None:
        children = list(decoders) + list(workers)
        for c in children:
            try:
                c.conn.send(("exit",))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + 3
        for c in children:
            c.proc.join(max(0.0, deadline - time.monotonic()))
        for c in children:
            if c.proc.is_alive():
                c.proc.kill()
                c.proc.join(2)
            try:
                c.conn.close()
            except OSError:
                pass
        ring.close()

    def frame_threads_for(self, decoding: int) -> bool | None:
        """FFmpeg frame threads for a job starting while ``decoding`` decoders (itself included) are busy."""
        return frame_threads_rule(self._cores, decoding, self.n_workers, self._frame_threads)

    # -- coordinator -----------------------------------------------------------------------------------
    def _post(self, cmd: tuple) -> None:
        self._cmds.put(cmd)
        try:
            self._wake_w.send_bytes(b"!")
        except OSError:
            pass

    def _run(self) -> None:
        try:
            while True:
                conns: dict[Any, _Child] = {}
                for c in self._decoders + self._workers:
                    conns[c.conn] = c
                    conns[c.proc.sentinel] = c
                ready = wait([self._wake_r, *conns], timeout=1.0)
                for obj in ready:
                    if obj is self._wake_r:
                        while self._wake_r.poll():
                            self._wake_r.recv_bytes()
                        continue
                    child = conns[obj]
                    if obj is child.conn:
                        self._drain_child(child)
                    elif not child.proc.is_alive() and child in self._decoders + self._workers:
                        self._drain_child(child)
                        self._on_crash(child)
                while True:
                    try:
                        cmd = self._cmds.get_nowait()
                    except queue.Empty:
                        break
                    if cmd[0] == "close":
                        self._shutdown_jobs()
                        return
                    self._on_command(cmd)
                self._schedule()
        except Exception:  # a bug here must not hang every caller
            log.exception("coordinator crashed")
            self._shutdown_jobs(EngineError("engine failure"))

    def _drain_child(self, child: _Child) -> None:
        try:
            while child.conn.poll():
                msg = child.conn.recv()
                if child.kind == "decoder":
                    self._on_decoder(child, msg)
                else:
                    self._on_worker(child, msg)
        except (EOFError, OSError):
            pass  # the sentinel reports the death

    def _on_command(self, cmd: tuple) -> None:
        kind = cmd[0]
        if kind == "submit":
            _, key, job, req = cmd
            names = [o.op for o in req.ops]
            st = _JobState(
                key=key, job=job, request=req, ops=names,
                specs=unique_specs(s for o in req.ops for s in self._ops[o.op].specs_for(o.params)),
                aggs={o.op: OpAggregator(o.params, req.params.segment) for o in req.ops},
                active=list(names),
            )
            self._jobs[key] = st
            self._waiting.append(key)
            self._stats["jobs"] += 1
            params = {o.op: o.params for o in req.ops}
            for w in self._workers:
                self._send(w, ("params", key, params, st.specs))
        elif kind == "cancel":
            st = self._jobs.get(cmd[1])
            if st is not None:
                self._finish(st, error=Cancelled(), cancelled=True)

    def _on_decoder(self, d: _Child, msg: tuple) -> None:
        kind = msg[0]
        if kind == "frame":
            _, slot, key, seq, offset_ms = msg
            d.slots.discard(slot)
            st = self._jobs.get(key)
            if st is None or not st.active:
                self._stats["decoded"] += 1
                self._release(slot)
                return
            st.offsets[seq] = offset_ms
            self._stats["decoded"] += 1
            lead = self._stats["decoded"] - self._stats["frames"]
            if lead > self._stats["max_lead"]:
                self._stats["max_lead"] = lead
            self._slot_state[slot] = _READY
            self._pending.append((slot, key, seq))
        elif kind == "meta":
            st = self._jobs.get(msg[1])
            if st is not None:
                st.duration_ms = msg[2]
        elif kind == "done":
            _, key, frames, error, returned = msg
            d.job = None
            for slot in returned:
                if slot in d.slots:
                    d.slots.discard(slot)
                    self._release(slot)
            st = self._jobs.get(key)
            if st is None:
                return
            st.decoder = None
            st.total = frames
            if error is not None:
                self._finish(st, error=rebuild_error(error))
            else:
                self._advance(st)

    def _on_worker(self, w: _Child, msg: tuple) -> None:
        if msg[0] == "ready":
            self._on_ready(w, msg)
            return
        for slot, key, seq, outputs, error in msg[1]:
            w.slots.discard(slot)
            self._release(slot)
            st = self._jobs.get(key)
            if st is None:
                continue
            st.buffer[seq] = (outputs, error)
            self._advance(st)
        self._stats["frames"] += len(msg[1])

    def _advance(self, st: _JobState) -> None:
        """Feed in-order results through the aggregators; finish or stop the job when it is done."""
        while st.next_seq in st.buffer and st.key in self._jobs:
            outputs, error = st.buffer.pop(st.next_seq)
            offset = st.offsets.pop(st.next_seq)
            st.next_seq += 1
            if error is not None:
                self._finish(st, error=rebuild_error(error))
                return
            for name in list(st.active):
                out = outputs.get(name)
                if out is None:
                    continue
                agg = st.aggs[name]
                for seg in agg.add(CutIn(offset=offset, labels=out.labels, result=out.result)):
                    st.job._emit(SegmentClosed(st.job.id, name, seg))
                if agg.stopped:
                    st.active.remove(name)
                    st.job._emit(OpFinished(st.job.id, name, agg.result(), terminated=True))
            self._maybe_progress(st, offset)
        if st.key not in self._jobs:
            return
        if not st.active:
            self._finish(st)  # every op reached its terminate threshold: stop decoding now
        elif st.total is not None and st.next_seq >= st.total:
            self._finish(st)

    def _finish(self, st: _JobState, error: ArgusError | None = None, cancelled: bool = False) -> None:
        if self._jobs.pop(st.key, None) is None:
            return
        if st.decoder is not None:
            self._send(self._decoders[st.decoder], ("stop", st.key))
        try:
            self._waiting.remove(st.key)
        except ValueError:
            pass
        for w in self._workers:
            self._send(w, ("forget", st.key))
        result: dict[str, OpResult] | None = None
        if error is None:
            result = {}
            for name in st.ops:
                agg = st.aggs[name]
                if name in st.active:
                    for seg in agg.finish():
                        st.job._emit(SegmentClosed(st.job.id, name, seg))
                    st.job._emit(OpFinished(st.job.id, name, agg.result()))
                result[name] = agg.result()
        else:
            log.info("job %s ended: %s (%s)", st.job.id, error.message, error.detail)
        st.job._error = error
        st.job._emit(JobFinished(
            job_id=st.job.id, result=result, cancelled=cancelled, frames=st.next_seq,
            error=None if error is None else ErrorInfo(status=error.status, message=error.message),
        ))

    # -- slots and dispatch --------------------------------------------------------------------------
    def _release(self, slot: int) -> None:
        if self._slot_state[slot] != _FREE:
            self._slot_state[slot] = _FREE
            self._free.append(slot)

    def _schedule(self) -> None:
        # start waiting jobs on idle decoders
        for d in self._decoders:
            if d.job is None and self._waiting and d.proc.is_alive():
                key = self._waiting.popleft()
                st = self._jobs[key]
                d.job = key
                st.decoder = d.index
                samp = sampling_of(st.request, self.max_gap)
                decoding = sum(1 for other in self._decoders if other.job is not None)
                self._send(d, ("job", key, st.request.data.uri, samp, st.specs, self.open_timeout,
                               self.max_frames, self.max_duration, self.frame_threads_for(decoding)))
        # hand free slots to busy decoders, fairly
        busy = [d for d in self._decoders if d.job is not None]
        if busy:
            cap = max(2, self.n_slots // len(busy))
            progress = True
            while self._free and progress:
                progress = False
                for d in busy:
                    if self._free and len(d.slots) < cap:
                        slot = self._free.popleft()
                        self._slot_state[slot] = _DECODER
                        d.slots.add(slot)
                        self._send(d, ("slots", [slot]))
                        progress = True
        # dispatch decoded frames to the least-busy workers
        cap = 2 * self.max_batch
        batches: dict[int, list] = {}
        while self._pending:
            ready = [w for w in self._workers if w.ready and len(w.slots) < cap and w.proc.is_alive()]
            if not ready:
                break
            w = min(ready, key=lambda c: len(c.slots))
            slot, key, seq = self._pending.popleft()
            st = self._jobs.get(key)
            if st is None or not st.active:
                self._release(slot)
                continue
            self._slot_state[slot] = _WORKER
            w.slots.add(slot)
            batches.setdefault(w.index, []).append((slot, key, seq, tuple(st.active)))
        for index, items in batches.items():
            self._send(self._workers[index], ("frames", items))

    def _send(self, child: _Child, msg: tuple) -> None:
        try:
            child.conn.send(msg)
        except (OSError, ValueError):
            pass  # dead child: its sentinel fires and _on_crash cleans up

    # -- failures --------------------------------------------------------------------------------------
    def _on_crash(self, child: _Child) -> None:
        code = child.proc.exitcode
        log.error("%s %d died (exit code %s); restarting it", child.kind, child.index, code)
        self._stats["restarts"] += 1
        lost = set(child.slots)
        child.slots.clear()
        for slot in lost:
            self._release(slot)
        try:
            child.conn.close()
        except OSError:
            pass
        if child.kind == "worker":
            hit = self._jobs_with_slots(lost)
            for key in hit:
                st = self._jobs.get(key)
                if st is not None:
                    self._finish(st, error=EngineError("inference worker crashed", detail=f"exit code {code}"))
            new = self._start_worker(child.index)
            self._workers[child.index] = new
            for key, st in self._jobs.items():
                params = {o.op: o.params for o in st.request.ops}
                self._send(new, ("params", key, params, st.specs))
        else:
            key = child.job
            st = self._jobs.get(key) if key is not None else None
            if st is not None:
                st.decoder = None
                self._finish(st, error=EngineError("decoder crashed", detail=f"exit code {code}"))
            self._decoders[child.index] = self._start_decoder(child.index)

    def _jobs_with_slots(self, slots: set[int]) -> set[int]:
        # The ring header says which job each slot was written for.
        keys = set()
        for slot in slots:
            keys.add(self._ring.meta(slot)["job"])
        return keys

    def _shutdown_jobs(self, error: ArgusError | None = None) -> None:
        for st in list(self._jobs.values()):
            self._finish(st, error=error or EngineError("engine closed"))

    # -- progress ----------------------------------------------------------------------------------------
    def _maybe_progress(self, st: _JobState, offset: int) -> None:
        now = time.monotonic()
        if now - st.last_progress < 0.5:
            return
        st.last_progress = now
        st.job._emit(self._progress(st, offset))

    def _progress(self, st: _JobState, offset: int) -> Progress:
        vf = st.request.params.vframe
        start = int((vf.ss or 0) * 1000) if vf else 0
        end = st.duration_ms
        if vf and vf.t:
            end = min(end, start + int(vf.t * 1000)) if end else start + int(vf.t * 1000)
        pct = None
        if end and end > start:
            pct = round(max(0.0, min(100.0, 100.0 * (offset - start) / (end - start))), 1)
        return Progress(job_id=st.job.id, frames=st.next_seq, position_ms=offset, duration_ms=end, percent=pct)


def _error_from(info: ErrorInfo) -> ArgusError:
    err = ArgusError(info.message)
    err.status = info.status
    return err
