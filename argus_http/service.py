"""What the routes share: settings, the tables and the queue, the engine (None on an API-only server),
the SSRF guard, authentication, metrics, the frame store and the sync-analysis slots."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from argus_core import verdict
from argus_core.request import VideoRequest, parse_request

from .auth import Authenticator
from .config import Settings
from .metrics import Metrics
from .net.ssrf import Guard
from .queue.database import JobQueue
from .queue.tables import Tables
from .save import FrameStore


class Service:
    def __init__(self, settings: Settings, tables: Tables, queue: JobQueue, engine: Any = None, *,
                 guard: Guard | None = None, metrics: Metrics | None = None, store: FrameStore | None = None,
                 on_submit: Callable[[], None] | None = None) -> None:
        self.s = settings
        self.t = tables
        self.queue = queue
        self.engine = engine
        self.guard = guard or Guard(settings.ssrf_allow)
        self.auth = Authenticator(settings.auth_keys, max_skew=settings.auth_max_skew or float("inf"),
                                  require_date=settings.auth_require_date)
        self.metrics = metrics or Metrics()
        self.store = store
        self.on_submit = on_submit or (lambda: None)
        self.sync_slots = threading.BoundedSemaphore(settings.sync_concurrency)
        self.started = time.time()

    def parse(self, body: Any) -> VideoRequest:
        """A request body validated by the contract and, when this server analyses, by its ops' own checks."""
        parsed = parse_request(body, self.known_ops(), max_interval=self.s.max_interval)
        if self.engine is not None:
            self.engine.check(parsed)
        verdict.policies_of(parsed, self.s.verdict_policy)  # a bad params.other.suggestion is a 400 now
        return parsed

    def known_ops(self) -> set[str] | None:
        return None if self.engine is None else set(self.engine.known_ops())
