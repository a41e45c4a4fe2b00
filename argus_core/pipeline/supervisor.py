"""Child processes: start the decoders and inference workers, wait for the workers' models, restart a child
that died, and stop them all. Knows nothing of jobs: the coordinator decides what a death costs.

Children are spawned (never forked: the parent has threads, and CUDA does not survive a fork).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from ..errors import EngineError
from .decoder import decoder_main
from .messages import Channel, Exit, WorkerReady, parent_of_decoder, parent_of_worker
from .ring import FrameRing
from .worker import worker_main

log = logging.getLogger("argus.engine")


@dataclass
class Child:
    """A decoder or inference process as the parent sees it."""

    kind: str  # "decoder" | "worker"
    index: int
    proc: Any
    chan: Channel
    slots: set[int] = field(default_factory=set)  # decoder: granted; worker: in flight
    job: int | None = None  # decoder: the job it decodes
    ready: bool = False
    info: dict = field(default_factory=dict)  # worker: pid, device, …

    def send(self, msg: object) -> None:
        try:
            self.chan.send(msg)
        except (OSError, ValueError):
            pass  # dead child: its sentinel fires and the coordinator cleans up

    @property
    def alive(self) -> bool:
        return self.proc.is_alive()


@dataclass(frozen=True)
class WorkerSettings:
    ops: tuple[str, ...]
    models_dir: str | None
    max_batch: int
    max_wait_s: float
    threads: int
    options: dict[str, Any]


@contextlib.contextmanager
def child_env() -> Iterator[None]:
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


class Supervisor:
    """Owns the child processes. ``decoders[i]`` / ``workers[i]`` are replaced in place on restart."""

    def __init__(self, ctx: Any, ring: FrameRing, n_decoders: int, n_workers: int,
                 worker_settings: WorkerSettings, source_options: dict[str, str]) -> None:
        self.ctx = ctx
        self.ring = ring
        self.worker_settings = worker_settings
        self.source_options = source_options
        self.decoders: list[Child] = []
        self.workers: list[Child] = []
        self.restarts = 0
        try:
            self.decoders = [self.start_decoder(i) for i in range(n_decoders)]
            self.workers = [self.start_worker(i) for i in range(n_workers)]
        except BaseException:
            self.stop_all()
            raise

    @property
    def children(self) -> list[Child]:
        return self.decoders + self.workers

    def _spawn(self, kind: str, index: int, target: Callable, args: tuple) -> Child:
        parent, child = self.ctx.Pipe()
        proc = self.ctx.Process(target=target, name=f"argus-{kind}-{index}", daemon=True, args=(child, *args))
        with child_env():
            proc.start()
        child.close()
        chan = parent_of_decoder(parent) if kind == "decoder" else parent_of_worker(parent)
        return Child(kind, index, proc, chan, ready=kind == "decoder")

    def start_decoder(self, index: int) -> Child:
        r = self.ring
        return self._spawn("decoder", index, decoder_main, (r.name, r.slots, r.slot_bytes, self.source_options))

    def start_worker(self, index: int) -> Child:
        r, s = self.ring, self.worker_settings
        return self._spawn("worker", index, worker_main, (r.name, r.slots, r.slot_bytes, list(s.ops), s.models_dir,
                                                          s.max_batch, s.max_wait_s, s.threads, s.options))

    def await_workers(self, on_ready: Callable[[Child, WorkerReady], None], timeout: float = 120.0) -> None:
        """Block until every worker has loaded its models (raises EngineError, children stopped, if not)."""
        deadline = time.monotonic() + timeout
        for w in self.workers:
            if not w.chan.poll(max(0.0, deadline - time.monotonic())):
                self.stop_all()
                raise EngineError("inference worker did not start", detail="timeout loading models")
            try:
                msg = w.chan.recv()
            except EOFError:
                self.stop_all()
                raise EngineError("inference worker did not start",
                                  detail=f"exit code {w.proc.exitcode}; in a script, create the Engine under "
                                         "`if __name__ == \"__main__\":`") from None
            if isinstance(msg, WorkerReady):
                on_ready(w, msg)

    def restart(self, child: Child) -> Child:
        """Replace a dead child with a fresh one at the same index."""
        self.restarts += 1
        try:
            child.chan.close()
        except OSError:
            pass
        if child.kind == "worker":
            new = self.start_worker(child.index)
            self.workers[child.index] = new
        else:
            new = self.start_decoder(child.index)
            self.decoders[child.index] = new
        return new

    def stop_all(self) -> None:
        stop_children(self.children)


def stop_children(children: list[Child]) -> None:
    """Ask every child to exit, wait up to 3 s, then kill what is left (also the engine's finalizer)."""
    for c in children:
        c.send(Exit())
    deadline = time.monotonic() + 3
    for c in children:
        c.proc.join(max(0.0, deadline - time.monotonic()))
    for c in children:
        if c.proc.is_alive():
            c.proc.kill()
            c.proc.join(2)
        try:
            c.chan.close()
        except OSError:
            pass
