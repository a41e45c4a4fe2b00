"""The worker loop: claim jobs, run them on the engine, keep their leases alive, report what happens.

One thread claims (up to ``settings.jobs`` at once) and starts a thread per job; a monitor thread polls
every ``cancel_poll`` seconds for leases that are gone (killed jobs, expired leases) — and the queue also
calls :meth:`Runner.cancel` directly for in-process kills — so decoding stops well within 2 s. Leases are
touched every third of their length. What a job does is its kind's executor (:data:`EXECUTORS`):
:func:`argus_http.jobs.video.run`, :func:`argus_http.jobs.vframe.run` or :func:`argus_http.jobs.abstract.run`.

The runner talks to a :class:`~argus_http.queue.protocol.Backend`: the database queue itself
(:class:`argus_http.queue.database.JobQueue`) or the queue API of a remote server
(:class:`argus_http.queue.remote.RemoteQueue`).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any, Callable, Sequence

from ..config import Settings
from ..metrics import Metrics
from ..net.ssrf import Guard
from ..queue.protocol import Backend, Lease
from . import abstract, video, vframe
from .running import Context, EngineLike, Running

log = logging.getLogger("argus.runner")

#: How each kind of job is executed.
EXECUTORS: dict[str, Callable[[Context, Running], None]] = {"video": video.run, "vframe": vframe.run,
                                                          "abstract": abstract.run}


class Runner:
    """Runs async jobs from ``backend`` on ``engine``; ``start()`` / ``stop()``."""

    def __init__(self, engine: EngineLike, backend: Backend, settings: Settings, guard: Guard, *,
                 owner: str | None = None, metrics: Metrics | None = None, store: Any = None,
                 kinds: Sequence[str] = tuple(EXECUTORS)) -> None:
        self.backend = backend
        self.s = settings
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.metrics = metrics or Metrics()
        self.ctx = Context(engine, backend, settings, guard, self.metrics, store)
        self.kinds = tuple(kinds)
        self.running: dict[str, Running] = {}
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
            r.lose()

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
                    r.lose()
                elif now - r.last_touch >= touch_every:
                    try:
                        ok = self.backend.touch(r.lease.job_id, r.lease.token)
                    except Exception:
                        log.exception("touch failed")
                        continue
                    r.last_touch = now
                    if not ok:
                        r.lose()

    def _start_job(self, lease: Lease) -> None:
        r = Running(lease, self.backend)
        r.thread = threading.Thread(target=self._guarded, args=(EXECUTORS[lease.kind], r),
                                    name=f"argus-job-{lease.job_id}", daemon=True)
        with self._lock:
            self.running[lease.job_id] = r
        r.thread.start()

    def _guarded(self, execute: Callable[[Context, Running], None], r: Running) -> None:
        try:
            execute(self.ctx, r)
        except Exception as exc:  # a bug must not leave the job DOING until its lease expires
            log.exception("job crashed", extra={"job": r.lease.job_id})
            r.end(error="internal error", retry=True, detail=str(exc))
        finally:
            with self._lock:
                self.running.pop(r.lease.job_id, None)
            self.metrics.add("jobs_run")
            self._wake.set()
            self.backend.close_thread()  # this thread's DB connection
