"""FakeEngine: a scripted stand-in for argus_core.Engine, for tests of the *service layer only* (queue,
runner, outbox, crash handling, saturation). Tests of analysis results use the real Engine.

It speaks the real event types. Each job yields ``FAKE_FRAMES`` cuts (default 6) ``FAKE_DELAY`` seconds apart
(default 0.02), closes a segment every 2 cuts, then finishes every op. URIs steer failures:
``.../fail404`` → 424 "cannot find the video"; ``.../crash`` → 500 (retryable); ``.../slow`` → 0.2 s per cut.
"""

from __future__ import annotations

import os
import queue
import secrets
import threading
import time
from typing import Any

import msgspec

from argus_core.errors import ArgusError, BadOp, CannotOpen, EngineError, VideoNotFound
from argus_core.events import ErrorInfo, JobFinished, OpFinished, Progress, SegmentClosed
from argus_core.request import parse_request
from argus_core.result import Cut, Label, OpResult, Segment


class FakeJob:
    def __init__(self, engine: "FakeEngine", job_id: str, req: Any) -> None:
        self.id = job_id
        self.req = req
        self._q: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self.cancel_seen_at: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def cancel(self) -> None:
        self._cancel.set()

    def events(self, timeout: float | None = None):
        while True:
            ev = self._q.get(timeout=timeout)
            yield ev
            if isinstance(ev, JobFinished):
                return

    def result(self, timeout: float | None = None) -> dict:
        for ev in self.events(timeout):
            if isinstance(ev, JobFinished):
                if ev.error is not None:
                    err = ArgusError(ev.error.message)
                    err.status = ev.error.status
                    raise err
                return msgspec.to_builtins(ev.result)
        raise AssertionError("unreachable")

    def _run(self) -> None:
        uri = self.req.data.uri
        frames = int(os.environ.get("FAKE_FRAMES", "6"))
        delay = 0.2 if uri.endswith("slow") else float(os.environ.get("FAKE_DELAY", "0.02"))
        if uri.endswith("fail404"):
            self._q.put(JobFinished(self.id, None, ErrorInfo(VideoNotFound.status, VideoNotFound.message)))
            return
        if uri.endswith("crash"):
            self._q.put(JobFinished(self.id, None, ErrorInfo(500, "decoder crashed")))
            return
        if uri.endswith("badfile"):
            self._q.put(JobFinished(self.id, None, ErrorInfo(CannotOpen.status, CannotOpen.message)))
            return
        ops = [o.op for o in self.req.ops]
        segs: dict[str, list[Segment]] = {op: [] for op in ops}
        pending: list[Cut] = []
        for i in range(frames):
            if self._cancel.wait(delay):
                self.cancel_seen_at = time.monotonic()
                self._q.put(JobFinished(self.id, None, ErrorInfo(499, "context canceled"), cancelled=True, frames=i))
                return
            pending.append(Cut(offset=i * 1000, result={"label": 2, "score": 0.9}))
            if len(pending) == 2 or i == frames - 1:
                for op in ops:
                    seg = Segment(pending[0].offset, pending[-1].offset, [Label("2", 0.9)], list(pending))
                    segs[op].append(seg)
                    self._q.put(SegmentClosed(self.id, op, seg))
                pending = []
            self._q.put(Progress(self.id, i + 1, i * 1000, frames * 1000, None))
        result = {}
        for op in ops:
            res = OpResult(labels=[Label("2", 0.9)] if segs[op] else [], segments=segs[op])
            result[op] = res
            self._q.put(OpFinished(self.id, op, res))
        self._q.put(JobFinished(self.id, result, frames=frames))


class FakeEngine:
    """Same surface as argus_core.Engine (known_ops/submit/analyze/close)."""

    def __init__(self, **_: Any) -> None:
        self.jobs: dict[str, FakeJob] = {}
        self.submitted: list[str] = []

    def check(self, req) -> None:
        """Ops' own params checks: the fake ops accept any params."""

    def known_ops(self) -> set[str]:
        return {"pulp", "terror"}

    def submit(self, body: Any, job_id: str | None = None, start_ms: int = 0) -> FakeJob:
        req = parse_request(body, self.known_ops())
        job = FakeJob(self, job_id or secrets.token_hex(12), req)
        self.jobs[job.id] = job
        self.submitted.append(job.id)
        return job

    def analyze(self, body: Any) -> dict:
        return self.submit(body).result()

    def close(self) -> None:
        for j in self.jobs.values():
            j.cancel()


__all__ = ["FakeEngine", "BadOp", "EngineError"]
