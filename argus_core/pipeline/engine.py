"""The Engine: the facade an embedder (and the HTTP service) holds. It loads the ops' manifests, creates the
ring, has the :class:`~.supervisor.Supervisor` start the processes and the
:class:`~.coordinator.Coordinator` thread run them, and turns API calls into coordinator commands.

::

    Engine.submit ─► Coordinator ─► decoder procs (media.sampler) ─► FrameRing ─► inference procs ─┐
          ▲               ▲  aggregate §4–§6, terminate, progress                                  │
          └── Job.events ◄┴──────────────────────────────── results (messages.Results) ◄──────────┘
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import secrets
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Mapping

import msgspec

from ..errors import BadOp, EngineError
from ..media.renditions import slot_bytes_for, unique_specs
from ..media.source import require_protocol
from ..ops import check_request, create_op, op_classes
from ..request import VideoRequest, parse_request
from ..runtime.device import device_name
from ..runtime.tuning import machine_cores, plan
from .coordinator import Cancel, Close, Coordinator, Limits, Stop, Submit
from .job import Job
from .ring import FrameRing, reap_orphans
from .supervisor import Supervisor, WorkerSettings, stop_children

log = logging.getLogger("argus.engine")


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
    keyframe-mode samples, ``live_max_duration``: seconds one live job may run (0: unbounded).
    ``frame_threads``: FFmpeg frame threads in the decoders; None (default) decides
    per job with :func:`frame_threads_rule` (off while busy decoders and workers take every core); True /
    False force them. ``threads`` / ``max_batch``: intra-op threads and batch per inference worker; None
    (default) takes :func:`argus_core.runtime.tuning.plan`'s choice for this machine. ``source_options``: extra
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
        max_batch: int | None = None,
        max_wait_ms: float = 4.0,
        threads: int | None = None,
        max_interval: float = 10.0,
        max_gap: float = 10.0,
        max_frames: int = 3000,
        max_duration: float = 6 * 3600,
        open_timeout: float = 30.0,
        live_max_duration: float = 0.0,
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
        #: intra-op threads and max batch per inference worker: given, or the per-machine rule
        #: (runtime/tuning.py), shown by ``argus models``
        self.tuning = plan(machine_cores(), self.n_workers, self.n_decoders, device_name())
        self.max_batch = max(1, max_batch if max_batch is not None else self.tuning.max_batch)
        self.max_wait_s = max_wait_ms / 1000.0
        self.threads = threads if threads is not None else self.tuning.threads
        self.max_interval = max_interval
        self.max_gap = max_gap
        self.max_frames = max_frames
        self.max_duration = max_duration
        self.open_timeout = open_timeout
        self.unavailable: dict[str, str] = {}
        self._ops = self._load_manifests(ops)
        all_specs = unique_specs(s for op in self._ops.values() for s in op.specs())
        # a cut's slot also holds the frames before and after it for ops that average them (pulp, ``Sides``)
        sides = unique_specs(s for op in self._ops.values() if op.neighbours_ms for s in op.specs())
        self.slot_bytes = max(slot_bytes_for(all_specs) + 2 * slot_bytes_for(sides), 64)
        self.n_slots = slots or max(8, 2 * self.max_batch * self.n_workers + 2 * self.n_decoders)
        self._cores = cores
        self._frame_threads: bool | None = frame_threads  # None: frame_threads_for decides per job
        self.source_options: dict[str, str] = dict(source_options or {})
        self._closed = False
        self._keys = itertools.count(1)
        if mp.current_process().name.startswith("argus-"):
            # We are one of the engine's own children importing the embedder's __main__: its top level creates
            # an Engine. Fail here with the fix, before any shared memory exists, not as a broken worker.
            raise EngineError("engine started inside its own child process",
                              detail="create the Engine under `if __name__ == \"__main__\":` "
                                     "(child processes are spawned and import the main module)")
        ctx = mp.get_context("spawn")
        # An engine whose whole process group was SIGKILLed (its resource tracker too) left its ring in
        # /dev/shm; the next engine on the machine (a restarted worker) unlinks it (issue 10).
        reap_orphans()
        self._ring = FrameRing.create(self.n_slots, self.slot_bytes)
        try:
            self._sup = Supervisor(
                ctx, self._ring, self.n_decoders, self.n_workers,
                WorkerSettings(tuple(self._ops), self.models_dir, self.max_batch, self.max_wait_s, self.threads,
                               self.options),
                self.source_options)
            self._coord = Coordinator(
                self._sup, self._ring, self._ops,
                Limits(max_gap, max_frames, max_duration, open_timeout, self.frame_threads_for, live_max_duration),
                self.max_batch, ctx.Pipe(duplex=False))
            self._coord.on_op_unusable = self._disable_op
            self._sup.await_workers(self._coord.on_ready)
        except BaseException:
            # Start-up failed (a worker could not load, the spawn start method could not import __main__,
            # Ctrl-C): release the shared memory now, never leave it to the resource tracker's warning.
            sup = self.__dict__.get("_sup")
            if sup is not None:
                sup.stop_all()
            self._ring.close()
            raise
        self._thread = threading.Thread(target=self._coord.run, name="argus-coordinator", daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(self, Engine._cleanup, self._ring, self._sup)

    def _load_manifests(self, names: list[str] | None) -> dict[str, Any]:
        """Op instances (manifests only, cheap) for the requested ops; unusable ones land in ``unavailable``."""
        mdir = Path(self.models_dir) if self.models_dir else None
        classes = op_classes(mdir)
        loaded: dict[str, Any] = {}
        for name in names if names is not None else list(classes):
            if name not in classes:
                raise BadOp(detail=f"unknown op {name!r}; known: {', '.join(sorted(classes))}")
            try:
                loaded[name] = create_op(name, mdir, self.options)
            except Exception as exc:
                self.unavailable[name] = f"{type(exc).__name__}: {exc}"
                log.warning("op %s unavailable: %s", name, exc)
        return loaded

    def _disable_op(self, name: str, reason: str) -> None:
        self.unavailable[name] = reason
        self._ops.pop(name, None)

    # -- public API ----------------------------------------------------------------------------------
    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def known_ops(self) -> set[str]:
        """Ops this engine can run (models present and verified)."""
        return set(self._ops)

    def parse(self, body: bytes | str | Mapping[str, Any] | VideoRequest) -> VideoRequest:
        """Validate a request for this engine: the contract's rules, then each op's own params
        (``Op.check_params``), so a bad parameter is a 400 at submit and never fails a shared batch."""
        if isinstance(body, VideoRequest):
            body = msgspec.to_builtins(body)
        req = parse_request(body if isinstance(body, (bytes, str)) else dict(body), self.known_ops(),
                            max_interval=self.max_interval)
        self.check(req)
        return req

    def check(self, req: VideoRequest) -> None:
        """Each op's own validation of its params (documented 400s), for a request parsed elsewhere; and a
        scheme this build's FFmpeg cannot dial (``srt://`` without libsrt) is a 400 now, not a job that retries."""
        check_request(req, self._ops)
        require_protocol(req.data.uri)

    def submit(self, body: bytes | str | Mapping[str, Any] | VideoRequest, job_id: str | None = None, *,
               start_ms: int = 0) -> Job:
        """Validate and queue a request; returns at once. Raises the documented error on bad input.

        Live streams (rtmp/rtsp/srt, or http(s) with ``params.live``) run until cancelled, until every op
        terminated, until ``params.live.timeout`` s pass without a frame, or ``live_max_duration``; their
        offsets are on one job clock starting at ``start_ms`` (pass one past the last offset seen to resume
        a job)."""
        if self._closed:
            raise EngineError("engine closed")
        if not self._coord.alive:
            raise EngineError("engine failure", detail="the coordinator has stopped")
        req = self.parse(body)
        key = next(self._keys)
        job = Job(job_id or secrets.token_hex(12), key, self._cancel, self._stop)
        self._coord.post(Submit(key, job, req, max(0, int(start_ms))))
        return job

    def _cancel(self, key: int) -> None:
        self._coord.post(Cancel(key))

    def _stop(self, key: int) -> None:
        self._coord.post(Stop(key))

    def analyze(self, body: bytes | str | Mapping[str, Any] | VideoRequest, timeout: float | None = None) -> dict:
        """Run a request to the end; returns ``{op: {labels, segments}}`` (the sync response, CONTRACT §7)."""
        job = self.submit(body)
        try:
            return job.result(timeout)
        except TimeoutError:
            job.cancel()
            raise

    #: a coordinator loop that has not turned for this long is stuck (it turns at least once a second)
    STUCK_AFTER_S = 15.0

    @property
    def healthy(self) -> bool:
        """Whether the engine can serve now (see :meth:`health`)."""
        return self.health()["ok"]

    def health(self) -> dict[str, Any]:
        """What an orchestrator's readiness probe needs (issue 10: ``/healthz`` said "ok" over a dead
        coordinator): ``ok`` only while the engine is open, its coordinator thread runs and has turned within
        :attr:`STUCK_AFTER_S`, and at least one decoder and one inference worker with its models loaded are
        alive. A child being restarted after a crash counts as down until it is ready again."""
        c = self._coord
        coordinator = (not self._closed and c.alive and self._thread.is_alive()
                       and time.monotonic() - c.beat < self.STUCK_AFTER_S)
        decoders = sum(1 for d in self._sup.decoders if d.alive)
        workers = sum(1 for w in self._sup.workers if w.alive and w.ready)
        return {"ok": bool(coordinator and decoders and workers and self._ops), "coordinator": coordinator,
                "decoders": decoders, "decoders_total": self.n_decoders, "workers_ready": workers,
                "workers_total": self.n_workers, "ops": len(self._ops)}

    def stats(self) -> dict[str, int]:
        """Counters: frames decoded/inferred, jobs, child restarts, ``max_lead`` (most frames ever decoded
        but not yet inferred: bounded by the ring's slots), busy decoders."""
        c = self._coord
        busy = sum(1 for d in self._sup.decoders if d.job is not None)
        return dict(c.stats, restarts=self._sup.restarts, jobs_running=len(c.jobs), jobs_waiting=len(c.waiting),
                    decoders_busy=busy, slots=self.n_slots)

    def slot_accounting(self) -> dict[str, int]:
        """Where the ring's slots are: free, held by decoders, at workers, decoded and pending (sums to
        ``slots`` when nothing leaks)."""
        return {"free": len(self._coord.book.free), "distinct_free": len(set(self._coord.book.free)),
                "decoders": sum(len(d.slots) for d in self._sup.decoders),
                "workers": sum(len(w.slots) for w in self._sup.workers),
                "pending": len(self._coord.pending), "slots": self.n_slots}

    @property
    def ring_name(self) -> str:
        """The shared-memory segment's name (for operators and leak checks)."""
        return self._ring.name

    def worker_info(self) -> list[dict]:
        """Per inference worker: pid, device ("cpu"/"cuda") and whether CuPy was imported."""
        return [dict(w.info) for w in self._sup.workers]

    def child_pids(self) -> dict[str, list[int]]:
        """Process ids of the decoders and inference workers (for operators and fault tests)."""
        return {"decoders": [d.proc.pid for d in self._sup.decoders],
                "workers": [w.proc.pid for w in self._sup.workers]}

    def abstract(self, source: str, layers: Any = (0, 1, 2), language: str = "zh", video_type: str | None = None,
                 progress: Any = None, stop: Any = None, *, task_id: str | None = None,
                 enable_person_name: bool = False, person_gallery: str | None = None,
                 time_limit_s: float | None = None) -> dict:
        """A video abstract of ``source`` (CONTRACT §12): the GET response body, run in the calling thread in
        one decode pass (:mod:`argus_core.abstract.run`; the ops run in this process, loaded once).
        ``progress(Progress)``; ``stop()`` → True ends decoding at the next frame (raises ``Cancelled``);
        ``time_limit_s``: run at most this long (``TimeOut``), None: the seed's limit for the duration."""
        from ..abstract import run as abstract_run

        opts = abstract_run.Options(layers=abstract_run.parse_layers(layers), language=language,
                                    video_type=video_type or "general", enable_person_name=enable_person_name,
                                    person_gallery=person_gallery, max_duration_s=self.max_duration,
                                    time_limit_s=time_limit_s)
        models = abstract_run.shared_models(self.models_dir, self.options, self.threads)
        return abstract_run.get_response(source, task_id or secrets.token_hex(10), opts, models=models,
                                         progress=progress, stop=stop, timeout=self.open_timeout,
                                         source_options=self.source_options)

    @property
    def galleries(self) -> Any:
        """Face galleries (:class:`argus_core.faces.gallery.GalleryStore`, created on first use) under
        ``options["galleries_dir"]``: groups, faces, search. Workers see changes on their next batch."""
        store = self.__dict__.get("_galleries")
        if store is None:
            from ..faces.gallery import GalleryStore

            store = self.__dict__.setdefault(
                "_galleries", GalleryStore(options=self.options, models_dir=self.models_dir, threads=self.threads))
        return store

    def close(self) -> None:
        """Stop every process and free the shared memory. Running jobs end with an error."""
        if self._closed:
            return
        self._closed = True
        self._coord.post(Close())
        self._thread.join(timeout=10)
        self._finalizer()

    def frame_threads_for(self, decoding: int) -> bool | None:
        """FFmpeg frame threads for a job starting while ``decoding`` decoders (itself included) are busy."""
        return frame_threads_rule(self._cores, decoding, self.n_workers * self.threads, self._frame_threads)

    @staticmethod
    def _cleanup(ring: FrameRing, sup: Supervisor) -> None:
        stop_children(sup.children)
        ring.close()
