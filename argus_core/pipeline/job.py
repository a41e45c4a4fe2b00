"""A submitted analysis as its embedder holds it: events in order, the result, cancel."""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable, Iterator

import msgspec

from ..errors import ArgusError
from ..events import ErrorInfo, Event, JobFinished


class Job:
    """A submitted analysis. Iterate ``events()`` or wait for ``result()``; ``cancel()`` abandons it, ``stop()``
    ends it early with what it has (a live stream's normal end).

    The coordinator thread calls :meth:`deliver` for each event; everything else is for the embedder."""

    def __init__(self, job_id: str, key: int, cancel: Callable[[int], None],
                 stop: Callable[[int], None] | None = None) -> None:
        self.id = job_id
        self.key = key
        self._cancel = cancel
        self._stop = stop or cancel
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._done = threading.Event()
        self._final: JobFinished | None = None
        self.error: ArgusError | None = None  #: the typed error once the job failed

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
        """Abandon the job: decoding stops at the next frame and it ends cancelled, without a result.
        Harmless on a finished job."""
        self._cancel(self.key)

    def stop(self) -> None:
        """End the job early, keeping what it has: decoding stops at the next frame, the frames already
        decoded are analysed, open segments close, and it ends with its result as if the video ended there
        (issue 12: Ctrl-C on a live stream prints the final result). Harmless on a finished job."""
        self._stop(self.key)

    def wait(self, timeout: float | None = None) -> JobFinished:
        if not self._done.wait(timeout):
            raise TimeoutError(f"job {self.id} not finished in {timeout} s")
        assert self._final is not None
        return self._final

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """The sync response body ``{op: {labels, segments}}``; raises the job's error."""
        final = self.wait(timeout)
        if final.error is not None:
            raise self.error or error_from(final.error)
        return msgspec.to_builtins(final.result or {})

    def deliver(self, ev: Event, error: ArgusError | None = None) -> None:
        """Queue an event (the coordinator's side); a :class:`JobFinished` ends the job."""
        if isinstance(ev, JobFinished):
            self.error = error
            self._final = ev
        self._events.put(ev)
        if isinstance(ev, JobFinished):
            self._done.set()


def error_from(info: ErrorInfo) -> ArgusError:
    err = ArgusError(info.message)
    err.status = info.status
    return err
