"""The worker loop: claim jobs, run them on the engine, keep their leases alive, report what happens.

One thread claims (up to ``settings.jobs`` at once) and starts a thread per job; a monitor thread polls
every ``cancel_poll`` seconds for leases that are gone (killed jobs, expired leases) — and the queue also
calls :meth:`Runner.cancel` directly for in-process kills — so decoding stops well within 2 s. Leases are
touched every third of their length. Engine events map to the callbacks of CONTRACT §7: a closed segment
→ ``hookURL_segment``, a finished op → the op's ``hookURL``, the end → ``params.hookURL`` via ``finish``.

The runner talks to a :class:`Backend`: the database queue itself (:class:`argus_http.jobqueue.JobQueue`)
or the queue API of a remote server (:class:`argus_http.remote.RemoteQueue`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections import defaultdict
from typing import Any, Iterable, Protocol, Sequence

import msgspec

from argus_core import verdict
from argus_core.errors import ArgusError, OutOfMemory
from argus_core.events import JobFinished, OpFinished, Progress, SegmentClosed

from .config import Settings
from .faces import scoped_request
from .jobqueue import CANCELLED_MESSAGE, Lease
from .metrics import Metrics
from .save import CutSaver
from .sources import engine_source, with_source
from .ssrf import Guard

log = logging.getLogger("argus.runner")

#: No engine event for this long → the job is cancelled and retried elsewhere.
STALL_TIMEOUT = 600.0


class Backend(Protocol):
    """What a runner needs from a queue (local database or remote queue API)."""

    def claim(self, owner: str, n: int, kinds: Sequence[str] = ...) -> list[Lease]: ...
    def touch(self, job_id: str, token: str) -> bool: ...
    def lost(self, leases: Iterable[tuple[str, str]]) -> set[str]: ...
    def record_segment(self, job_id: str, token: str, op: str, index: int, segment: dict[str, Any]) -> bool: ...
    def record_op(self, job_id: str, token: str, op: str, result: dict[str, Any]) -> bool: ...
    def record_callback(self, job_id: str, token: str, msg_id: str, url: str, body: dict[str, Any]) -> bool: ...
    def finish(self, job_id: str, token: str, result: dict[str, Any] | None = None,
               error: str | None = None, retryable: bool = False) -> bool: ...
    def release(self, job_id: str, token: str) -> bool: ...


class EngineJob(Protocol):
    id: str

    def events(self, timeout: float | None = None) -> Any: ...
    def cancel(self) -> None: ...


class EngineLike(Protocol):
    """The subset of :class:`argus_core.Engine` the service uses."""

    def known_ops(self) -> set[str]: ...
    def submit(self, body: Any, job_id: str | None = None) -> EngineJob: ...
    def analyze(self, body: Any) -> dict: ...


def retryable(status: int, message: str) -> bool:
    """Internal failures (a crashed decoder, a busy engine) are worth another attempt; bad input and
    missing media are not, and neither is running out of memory on the same video again."""
    return status >= 500 and message != OutOfMemory.message


def _policies(request: dict[str, Any], s: Settings) -> dict[str, verdict.Policy]:
    """The job's verdict policies (CONTRACT §14). Checked at submit; should they fail now (the server's
    config changed), the ops get the built-in ones rather than a failed job."""
    try:
        return verdict.policies_of(request, s.verdict_policy)
    except ArgusError:
        return {}


class _Running:
    __slots__ = ("lease", "handle", "lost", "releasing", "last_touch", "thread", "stop_event")

    def __init__(self, lease: Lease) -> None:
        self.lease = lease
        self.handle: EngineJob | None = None
        self.lost = False  # the lease is gone: never report anything again
        self.releasing = False  # shutting down: give the lease back
        self.last_touch = time.monotonic()
        self.thread: threading.Thread | None = None
        self.stop_event = threading.Event()  # for vframe jobs, which run no engine job

    def stop(self) -> None:
        self.stop_event.set()
        if self.handle is not None:
            try:
                self.handle.cancel()
            except Exception:
                log.exception("engine cancel failed")


class Runner:
    """Runs async jobs from ``backend`` on ``engine``; ``start()`` / ``stop()``."""

    def __init__(self, engine: EngineLike, backend: Backend, settings: Settings, guard: Guard, *,
                 owner: str | None = None, metrics: Metrics | None = None, store: Any = None,
                 kinds: Sequence[str] = ("video", "vframe")) -> None:
        self.engine = engine
        self.backend = backend
        self.s = settings
        self.guard = guard
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = metrics or Metrics()
        self.store = store
        self.kinds = tuple(kinds)
        self.running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._claim_loop, name="argus-claim", daemon=True),
                         threading.Thread(target=self._monitor_loop, name="argus-monitor", daemon=True)]

    # -- control ---------------------------------------------------------------------------------
    def start(self) -> "Runner":
        for t in self._threads:
            t.start()
        return self

    def wake(self) -> None:
        """A job was submitted in this process: look now instead of at the next poll."""
        self._wake.set()

    def cancel(self, job_id: str) -> None:
        """The job was killed (its lease is gone): stop it now."""
        with self._lock:
            r = self.running.get(job_id)
        if r is not None:
            r.lost = True
            r.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, stop running jobs and give their leases back (RESCHEDULED, no attempt spent)."""
        self._stopping.set()
        self._wake.set()
        with self._lock:
            running = list(self.running.values())
        for r in running:
            r.releasing = True
            r.stop()
        deadline = time.monotonic() + timeout
        for r in running:
            if r.thread is not None:
                r.thread.join(max(0.0, deadline - time.monotonic()))
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def idle(self) -> bool:
        with self._lock:
            return not self.running

    # -- loops -----------------------------------------------------------------------------------
    def _claim_loop(self) -> None:
        while not self._stopping.is_set():
            with self._lock:
                free = self.s.jobs - len(self.running)
            leases: list[Lease] = []
            if free > 0:
                try:
                    leases = self.backend.claim(self.owner, free, self.kinds)
                except Exception:
                    log.exception("claim failed")
            for lease in leases:
                if self._stopping.is_set():
                    self.backend.release(lease.job_id, lease.token)
                    continue
                self._start_job(lease)
            if not leases or free - len(leases) <= 0:
                self._wake.wait(self.s.poll_interval)
                self._wake.clear()

    def _monitor_loop(self) -> None:
        touch_every = self.s.lease_seconds / 3.0
        while not self._stopping.wait(self.s.cancel_poll):
            with self._lock:
                running = list(self.running.values())
            live = [r for r in running if not r.lost]
            if not live:
                continue
            try:
                gone = self.backend.lost([(r.lease.job_id, r.lease.token) for r in live])
            except Exception:
                log.exception("lease check failed")
                continue
            now = time.monotonic()
            for r in live:
                if r.lease.job_id in gone:
                    log.info("lease lost; stopping job", extra={"job": r.lease.job_id})
                    r.lost = True
                    r.stop()
                elif now - r.last_touch >= touch_every:
                    try:
                        ok = self.backend.touch(r.lease.job_id, r.lease.token)
                    except Exception:
                        log.exception("touch failed")
                        continue
                    r.last_touch = now
                    if not ok:
                        r.lost = True
                        r.stop()

    def _start_job(self, lease: Lease) -> None:
        r = _Running(lease)
        target = self._run_vframe if lease.kind == "vframe" else self._run_video
        r.thread = threading.Thread(target=self._guarded, args=(target, r), name=f"argus-job-{lease.job_id}",
                                    daemon=True)
        with self._lock:
            self.running[lease.job_id] = r
        r.thread.start()

    def _guarded(self, target: Any, r: _Running) -> None:
        try:
            target(r)
        except Exception as exc:  # a bug must not leave the job DOING until its lease expires
            log.exception("job crashed", extra={"job": r.lease.job_id})
            self._end(r, error="internal error", retry=True, detail=str(exc))
        finally:
            with self._lock:
                self.running.pop(r.lease.job_id, None)
            self.metrics.add("jobs_run")
            self._wake.set()
            close = getattr(self.backend, "close_thread", None)  # this thread's DB connection
            if close is not None:
                close()

    def _end(self, r: _Running, result: dict[str, Any] | None = None, error: str | None = None,
             retry: bool = False, detail: str = "") -> None:
        lease = r.lease
        if r.lost:
            return
        if r.releasing and error is not None:
            # Shutting down mid-job: give the lease back rather than report the interruption as a failure.
            self.backend.release(lease.job_id, lease.token)
            return
        ok = self.backend.finish(lease.job_id, lease.token, result=result, error=error, retryable=retry)
        log.info("job ended", extra={"job": lease.job_id, "error": error, "detail": detail, "accepted": ok})

    # -- video jobs ------------------------------------------------------------------------------
    def _run_video(self, r: _Running) -> None:
        lease = r.lease
        try:
            uri = engine_source(str((lease.request.get("data") or {}).get("uri", "")), self.s, self.guard)
            body = scoped_request(with_source(lease.request, uri), lease.uid if self.s.auth_enabled else None)
            handle = self.engine.submit(body, job_id=lease.job_id)
        except ArgusError as exc:
            self._end(r, error=exc.message, retry=retryable(exc.status, exc.message), detail=exc.detail)
            return
        r.handle = handle
        if r.lost or r.releasing:
            handle.cancel()
        saver = self._saver(lease, uri)
        try:
            self._follow(r, handle, saver)
        finally:
            if saver is not None:
                saver.close()

    def _saver(self, lease: Lease, source: str) -> CutSaver | None:
        """A frame saver when the request has ``params.save`` (CONTRACT §10) and a store is configured."""
        save = (lease.request.get("params") or {}).get("save")
        if self.store is None or not isinstance(save, dict):
            return None
        return CutSaver(self.store, source, save.get("prefix"), lease.vid,
                        getattr(self.engine, "source_options", None))

    def _follow(self, r: _Running, handle: EngineJob, saver: CutSaver | None) -> None:
        """Map the engine job's events to callbacks and, at the end, to ``finish``."""
        lease = r.lease
        seg_index: dict[str, int] = defaultdict(int)
        final: JobFinished | None = None
        frames_seen = 0
        policies = _policies(lease.request, self.s)
        try:
            for ev in handle.events(timeout=STALL_TIMEOUT):
                if isinstance(ev, SegmentClosed):
                    i = seg_index[ev.op]
                    seg_index[ev.op] += 1
                    seg = msgspec.to_builtins(ev.segment)
                    verdict.annotate_segment(seg, policies.get(ev.op) or verdict.policy_for(ev.op))
                    if saver is not None and not r.lost:
                        saver.cuts(seg["cuts"])  # saved before the callback, so it carries the uris
                    if not r.lost and not self.backend.record_segment(lease.job_id, lease.token, ev.op, i, seg):
                        self.cancel(lease.job_id)
                elif isinstance(ev, OpFinished):
                    res = msgspec.to_builtins(ev.result)
                    verdict.annotate_op(res, policies.get(ev.op) or verdict.policy_for(ev.op))
                    if saver is not None and not r.lost:
                        saver.op_result(res)
                    if not r.lost and not self.backend.record_op(lease.job_id, lease.token, ev.op, res):
                        self.cancel(lease.job_id)
                elif isinstance(ev, Progress):
                    self.metrics.frames(ev.frames - frames_seen)
                    frames_seen = ev.frames
                elif isinstance(ev, JobFinished):
                    final = ev
        except TimeoutError:
            handle.cancel()
            self._end(r, error="internal error", retry=True, detail="engine stalled")
            return
        assert final is not None
        self.metrics.frames(final.frames - frames_seen)
        if final.error is not None:
            if final.cancelled and not r.releasing:
                self._end(r, error=CANCELLED_MESSAGE)
            else:
                self._end(r, error=final.error.message, retry=retryable(final.error.status, final.error.message))
        else:
            result = msgspec.to_builtins(final.result or {})
            verdict.annotate(result, policies)
            if saver is not None:
                saver.job_result(result)
            self._end(r, result=result)

    # -- vframe jobs (CONTRACT §9) ---------------------------------------------------------------
    def _run_vframe(self, r: _Running) -> None:
        from . import vframe

        vframe.run(self, r)
