"""Process-local counters and the Prometheus text rendering of ``GET /metrics``.

Job and outbox figures come from the database at scrape time (they are shared by every process); frame
and request counters are this process's own.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any, Callable, Iterable, Sequence


class Metrics:
    """Thread-safe counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = {}
        self.frames_total = 0
        self._frames_window: deque[tuple[float, int]] = deque()
        self.callbacks_sent = 0
        self.callback_failures = 0
        self.sync_inflight = 0
        self.sync_rejected = 0
        self.jobs_run = 0
        self.live_reconnects = 0  #: reconnects of live sources seen by this process's runner (issue 12)

    def request(self, method: str, route: str, status: int) -> None:
        with self._lock:
            key = (method, route, status)
            self.requests[key] = self.requests.get(key, 0) + 1

    def frames(self, n: int) -> None:
        if n <= 0:
            return
        now = time.monotonic()
        with self._lock:
            self.frames_total += n
            self._frames_window.append((now, n))
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._frames_window and self._frames_window[0][0] < now - 60:
            self._frames_window.popleft()

    def frames_per_second(self) -> float:
        """Frames analysed per second over the last minute."""
        now = time.monotonic()
        with self._lock:
            self._trim(now)
            return sum(n for _, n in self._frames_window) / 60.0

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{_esc(v)}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {value}"
    return f"{name} {value}"


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(m: Metrics, job_counts: dict[str, int], outbox: dict[str, int],
           extra: Iterable[Callable[[], list[str]]] = (), abstracts: dict[str, int] | None = None,
           live: Sequence[Any] = ()) -> str:
    """The Prometheus text exposition (format 0.0.4); ``abstracts``: video abstract tasks by their
    CONTRACT §12 status; ``live``: the running live jobs' last reported connections (all processes)."""
    out: list[str] = []

    def metric(name: str, kind: str, help_: str, samples: list[tuple[float, dict[str, str] | None]]) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")
        out.extend(_line(name, v, lbl) for v, lbl in samples)

    metric("argus_jobs", "gauge", "Async jobs by status.",
           [(n, {"status": s}) for s, n in sorted(job_counts.items())])
    if abstracts is not None:
        metric("argus_video_abstracts", "gauge", "Video abstract tasks by status (CONTRACT §12).",
               [(n, {"status": s}) for s, n in abstracts.items()])
    metric("argus_live_jobs", "gauge", "Live jobs running, by whether their source is connected (issue 12).",
           [(sum(1 for s in live if s.connected is c), {"connected": str(c).lower()}) for c in (True, False)])
    metric("argus_live_reconnects", "gauge", "Reconnects so far of the live jobs running now.",
           [(sum(s.reconnects for s in live), None)])
    metric("argus_live_lag_ms_max", "gauge", "Largest media-clock lag of a running live job, ms.",
           [(max((s.lag_ms for s in live if s.lag_ms is not None), default=0), None)])
    metric("argus_live_reconnects_total", "counter", "Live source reconnects seen by this process.",
           [(m.live_reconnects, None)])
    metric("argus_queue_depth", "gauge", "Jobs waiting to run (WAITING + RESCHEDULED).",
           [(job_counts.get("WAITING", 0) + job_counts.get("RESCHEDULED", 0), None)])
    metric("argus_frames_total", "counter", "Frames analysed by this process.", [(m.frames_total, None)])
    metric("argus_frames_per_second", "gauge", "Frames analysed per second by this process (1 min average).",
           [(round(m.frames_per_second(), 3), None)])
    metric("argus_callbacks", "gauge", "Callback deliveries by state.",
           [(n, {"state": s}) for s, n in sorted(outbox.items()) if s != "failed_attempts"])
    metric("argus_callback_failures_total", "counter", "Failed callback delivery attempts (all processes).",
           [(outbox.get("failed_attempts", 0), None)])
    metric("argus_sync_inflight", "gauge", "Sync analyses running now.", [(m.sync_inflight, None)])
    metric("argus_sync_rejected_total", "counter", "Sync requests refused with 503.", [(m.sync_rejected, None)])
    with m._lock:
        reqs = sorted(m.requests.items())
    metric("argus_http_requests_total", "counter", "HTTP requests by route and status.",
           [(n, {"method": k[0], "route": k[1], "status": str(k[2])}) for k, n in reqs])
    for fn in extra:
        out.extend(fn())
    return "\n".join(out) + "\n"
