"""The inference process: load each op's models once, gather frames into batches across jobs (max batch /
max wait), run each frame's ops on numpy views of its ring slot (no copy), post small results back.

A failure is confined to what caused it: an op that raises on a batch of several jobs' frames runs again job
by job, so only the frames of the job that makes it fail get ``inference failed: <op>`` (:func:`infer_batch`),
and the parent fails only that job.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import ArgusError, EngineError, ErrorWire, to_wire
from ..media.renditions import Frame, FrameSpec
from ..request import OpParams
from ..result import CutOutput
from .decoder import child_setup
from .messages import (Exit, FrameBatch, FrameResult, FrameWork, ForgetJob, JobParams, Results, WorkerInfo,
                       WorkerReady, worker_side)
from .ring import SIDE_AFTER, SIDE_BEFORE, FrameRing

log = logging.getLogger("argus.worker")


class _Exit(Exception):
    pass


def load_ops(op_names: list[str], models_dir: str | None, options: dict[str, Any] | None, providers: list,
             threads: int, max_batch: int) -> tuple[dict[str, Any], dict[str, str]]:
    """Load and warm up every op; returns ``(ops, problems)`` — an op that cannot run is a problem, not a crash."""
    from ..ops import create_op

    ops: dict[str, Any] = {}
    problems: dict[str, str] = {}
    for name in op_names:
        try:
            op = create_op(name, models_dir, options)
            op.load(providers=providers, threads=threads)
            ops[name] = op
        except Exception as exc:
            problems[name] = f"{type(exc).__name__}: {exc}"
    warmed: set[int] = set()
    for name, op in list(ops.items()):
        for model in op.loaded.values():
            if id(model) in warmed or not hasattr(model, "warmup"):
                continue
            warmed.add(id(model))
            try:
                model.warmup(max_batch)
            except Exception as exc:  # a model that cannot run a batch cannot serve its op
                problems[name] = f"warm-up failed: {type(exc).__name__}: {exc}"
                ops.pop(name, None)
    return ops, problems


class Worker:
    """The inference process's state: per-job params and renditions, and the queue of frames to run."""

    def __init__(self, conn: Connection, ring: FrameRing, ops: dict[str, Any], max_batch: int,
                 max_wait_s: float) -> None:
        self.chan = worker_side(conn)
        self.ring = ring
        self.ops = ops
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.params: dict[int, dict[str, OpParams]] = {}
        self.specs_of: dict[int, tuple[FrameSpec, ...]] = {}
        self.sides_of: dict[int, tuple[FrameSpec, ...]] = {}
        self.queue: deque[FrameWork] = deque()
        # Fault injection for tests and drills: a slow model (ARGUS_FAULT_INFER_DELAY_MS per batch).
        self.delay = float(os.environ.get("ARGUS_FAULT_INFER_DELAY_MS", "0") or 0) / 1000.0

    def handle(self, msg: object) -> None:
        if isinstance(msg, FrameBatch):
            self.queue.extend(msg.items)
        elif isinstance(msg, JobParams):
            self.params[msg.key] = msg.params
            self.specs_of[msg.key] = msg.specs
            self.sides_of[msg.key] = msg.sides
        elif isinstance(msg, ForgetJob):
            self.params.pop(msg.key, None)
            self.specs_of.pop(msg.key, None)
            self.sides_of.pop(msg.key, None)
        elif isinstance(msg, Exit):
            raise _Exit

    def gather(self) -> list[FrameWork]:
        """Wait for work, then up to ``max_wait_s`` more for a full batch."""
        if not self.queue:
            self.handle(self.chan.recv())
        deadline = time.monotonic() + self.max_wait_s
        while len(self.queue) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0 or not self.chan.poll(left):
                break
            self.handle(self.chan.recv())
        return [self.queue.popleft() for _ in range(min(self.max_batch, len(self.queue)))]

    def run(self) -> None:
        while True:
            batch = self.gather()
            if not batch:
                continue
            if self.delay:
                time.sleep(self.delay)
            self.chan.send(Results(self.run_batch(batch)))

    def frame(self, w: FrameWork) -> Frame:
        meta = self.ring.meta(w.slot)
        return slot_frame(meta, self.ring.views(w.slot), self.specs_of.get(w.key, ()), self.sides_of.get(w.key, ()))

    def run_batch(self, batch: list[FrameWork]) -> list[FrameResult]:
        frames = [self.frame(w) for w in batch]
        live = [w.key in self.params for w in batch]  # a job that ended meanwhile: skip its frames
        outputs, errors = infer_batch(self.ops, frames, [w.key for w in batch],
                                      [w.ops if ok else () for w, ok in zip(batch, live)],
                                      lambda key, name: self.params[key][name])
        del frames  # drop ring views before the parent recycles the slots
        return [FrameResult(w.slot, w.key, w.seq, outputs[i], errors[i]) for i, w in enumerate(batch)]


def slot_frame(meta: dict[str, int], views: Sequence[np.ndarray], specs: Sequence[FrameSpec],
               sides: Sequence[FrameSpec]) -> Frame:
    """A slot as an op sees it: the job's renditions, then the neighbour frames the slot's flags say are there
    (written after them by the decoder, before-frame first; :class:`~argus_core.pipeline.messages.Sides`)."""
    n, k = len(specs), len(sides)
    present = []
    if k and len(views) >= n + 2 * k:
        for i, bit in enumerate((SIDE_BEFORE, SIDE_AFTER)):
            if meta.get("flags", 0) & bit:
                present.append(dict(zip(sides, views[n + i * k:n + (i + 1) * k])))
    return Frame(offset=meta["offset_ms"], src_w=meta["src_w"], src_h=meta["src_h"], views=dict(zip(specs, views)),
                 sides=tuple(present))


def infer_batch(
    ops: dict[str, Any], frames: Sequence[Frame], keys: Sequence[int], wanted: Sequence[Sequence[str]],
    params_of: Callable[[int, str], OpParams],
) -> tuple[list[dict[str, CutOutput]], list[ErrorWire | None]]:
    """Run each op once over the frames that want it (frames of several jobs in one batch).

    When an op raises on frames of more than one job, it runs again job by job, so only the frames of the
    job whose frames (or parameters) make it fail get ``inference failed: <op>`` — one job's bad input never
    fails the jobs it shared a batch with (issue 10: an ocr job with ``min_score: "abc"`` failed its
    neighbour). The retry costs one more run of the op on that batch, and only when an op has failed."""
    outputs: list[dict[str, CutOutput]] = [{} for _ in frames]
    errors: list[ErrorWire | None] = [None] * len(frames)
    by_op: dict[str, list[int]] = {}
    for i, names in enumerate(wanted):
        for name in names:
            by_op.setdefault(name, []).append(i)
    for name, idx in by_op.items():
        op = ops.get(name)
        groups = [idx]
        while groups:
            group = groups.pop()
            try:
                if op is None:
                    raise EngineError(detail=f"op {name} not loaded in this worker")
                outs = op.infer([frames[i] for i in group], [params_of(keys[i], name) for i in group])
                for i, out in zip(group, outs):
                    outputs[i][name] = out
            except Exception as exc:
                by_job: dict[int, list[int]] = {}
                for i in group:
                    by_job.setdefault(keys[i], []).append(i)
                if op is not None and len(by_job) > 1:
                    log.warning("op %s failed on a batch of %d frames of %d jobs (%s: %s); retrying job by job",
                                name, len(group), len(by_job), type(exc).__name__, exc)
                    groups.extend(by_job.values())
                    continue
                log.exception("op %s failed on %d frames of job %s", name, len(group), keys[group[0]])
                err = to_wire(exc if isinstance(exc, ArgusError) else
                              EngineError(f"inference failed: {name}", detail=f"{type(exc).__name__}: {exc}"))
                for i in group:
                    errors[i] = err
    return outputs, errors


def worker_main(
    conn: Connection,
    ring_name: str,
    slots: int,
    slot_bytes: int,
    op_names: list[str],
    models_dir: str | None,
    max_batch: int,
    max_wait_s: float,
    threads: int,
    options: dict[str, Any] | None = None,
) -> None:
    """Process entry point: load the ops, say ready, then serve batches until told to exit."""
    child_setup()
    from ..runtime.device import select_device

    ring = FrameRing.attach(ring_name, slots, slot_bytes)
    try:
        device = select_device()
        ops, problems = load_ops(op_names, models_dir, options, device.providers, threads, max_batch)
        worker = Worker(conn, ring, ops, max_batch, max_wait_s)
        info = WorkerInfo(pid=os.getpid(), device=device.name, cupy_imported="cupy" in sys.modules)
        worker.chan.send(WorkerReady(info, problems))
        worker.run()
    except (_Exit, EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        ring.close()
