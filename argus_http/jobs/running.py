"""One execution of a leased job (:class:`Running`) and what it runs with (:class:`Context`).

A job ends exactly once through :meth:`Running.end`: ``finish`` on its queue, or ``release`` when the
worker is shutting down, or nothing at all when the lease is gone (a killed or re-claimed job never
reports again, CONTRACT §8).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Protocol

from argus_core.errors import OutOfMemory

from ..config import Settings
from ..metrics import Metrics
from ..net.ssrf import Guard
from ..queue.protocol import Backend, Lease

log = logging.getLogger("argus.runner")


class EngineJob(Protocol):
    id: str

    def events(self, timeout: float | None = None) -> Any: ...
    def cancel(self) -> None: ...


class EngineLike(Protocol):
    """The subset of :class:`argus_core.Engine` the service uses."""

    def known_ops(self) -> set[str]: ...
    def submit(self, body: Any, job_id: str | None = None, start_ms: int = 0) -> EngineJob: ...
    def analyze(self, body: Any) -> dict: ...
    def abstract(self, source: str, layers: Any = ..., language: str = ..., video_type: str | None = ...,
                 progress: Any = ..., stop: Any = ..., **kw: Any) -> dict: ...


def retryable(status: int, message: str) -> bool:
    """Internal failures (a crashed decoder, a busy engine) are worth another attempt; bad input and
    missing media are not, and neither is running out of memory on the same video again."""
    return status >= 500 and message != OutOfMemory.message


class Context:
    """What a job runs with: the engine, its queue, settings, the SSRF guard, the frame store, metrics."""

    def __init__(self, engine: EngineLike, backend: Backend, settings: Settings, guard: Guard,
                 metrics: Metrics, store: Any = None) -> None:
        self.engine = engine
        self.backend = backend
        self.s = settings
        self.guard = guard
        self.metrics = metrics
        self.store = store


class Running:
    """A leased job while it runs on this worker."""

    __slots__ = ("lease", "backend", "handle", "lost", "releasing", "last_touch", "thread", "stop_event")

    def __init__(self, lease: Lease, backend: Backend) -> None:
        self.lease = lease
        self.backend = backend
        self.handle: EngineJob | None = None
        self.lost = False  # the lease is gone: never report anything again
        self.releasing = False  # shutting down: give the lease back
        self.last_touch = time.monotonic()
        self.thread: threading.Thread | None = None
        self.stop_event = threading.Event()  # for vframe and abstract jobs, which run no engine job

    def stop(self) -> None:
        self.stop_event.set()
        if self.handle is not None:
            try:
                self.handle.cancel()
            except Exception:
                log.exception("engine cancel failed")

    def lose(self) -> None:
        """The lease is gone (killed, expired, refused a write): stop and never report again."""
        self.lost = True
        self.stop()

    def stopping(self) -> bool:
        return self.lost or self.stop_event.is_set()

    def end(self, result: dict[str, Any] | None = None, error: str | None = None, retry: bool = False,
            detail: str = "") -> None:
        """Report the end of the job to its queue (see the module docstring)."""
        lease = self.lease
        if self.lost:
            return
        if self.releasing and error is not None:
            # Shutting down mid-job: give the lease back rather than report the interruption as a failure.
            self.backend.release(lease.job_id, lease.token)
            return
        ok = self.backend.finish(lease.job_id, lease.token, result=result, error=error, retryable=retry)
        log.info("job ended", extra={"job": lease.job_id, "error": error, "detail": detail, "accepted": ok})
