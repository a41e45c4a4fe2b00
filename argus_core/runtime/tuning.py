"""Thread and batch settings for this machine: a pure rule from (cores, workers, decoders, device).

The rule (:func:`plan`), from the measurements in ``bench/RESULTS.md`` (issue 14):

* **intra-op threads per inference worker** = the cores left after the decoders' share, divided among
  the workers, between 1 and :data:`MAX_THREADS`. A decoder needs about a tenth of the CPU an inference
  worker needs per frame (7.7 vs 94 ms per frame for the 5-op analysis), so on machines with more than 2
  cores decoders take ``ceil(decoders / 4)`` cores off the top. On 2 cores or fewer each decoder keeps a
  core: measured on this 2-core box (bench/RESULTS.md, issue 14), a 2-thread worker beside one decoder
  spent 8–14 % more CPU per frame (thread hand-offs) for no frames/s gain, so it gets 1 thread.
  Beyond 8 threads onnxruntime's small-model kernels scale poorly (a 224² MobileNetV2 at batch 8), so
  more cores are better spent on more workers.
* **max batch**: 8 on the CPU (per-frame cost is flat from batch 8 on, and a larger batch only adds
  latency and memory), 64 on a GPU (where per-frame cost falls until the device is busy; to be confirmed on
  the lent machine, see ``bench/device_check.sh``).

Threads > 1 run with spinning off (``allow_spinning=0``): on a shared machine a spinning pool burns the
cores other processes need.
"""

from __future__ import annotations

import math
import os

import msgspec

MAX_THREADS = 8
CPU_BATCH = 8
GPU_BATCH = 64


class Tuning(msgspec.Struct, frozen=True):
    """What :func:`plan` chose, and from what (shown by ``argus models``)."""

    device: str
    cores: int
    workers: int
    decoders: int
    threads: int
    max_batch: int

    def describe(self) -> str:
        return (f"{self.device}: {self.cores} cores, {self.workers} inference worker(s), {self.decoders} "
                f"decoder(s) -> {self.threads} intra-op thread(s) per worker, batch {self.max_batch}")


def plan(cores: int, workers: int, decoders: int, device: str = "cpu") -> Tuning:
    """Intra-op threads per worker and the max batch (see the module docstring for the rule)."""
    cores, workers, decoders = max(1, cores), max(1, workers), max(0, decoders)
    if device == "cuda":
        # the GPU does the maths; a worker's CPU threads only feed it
        return Tuning(device, cores, workers, decoders, 1, GPU_BATCH)
    reserve = math.ceil(decoders / 4) if cores > 2 else decoders
    threads = max(1, min(MAX_THREADS, (cores - reserve) // workers))
    return Tuning(device, cores, workers, decoders, threads, CPU_BATCH)


def machine_cores() -> int:
    """Cores this process may use (the affinity mask, e.g. under a container CPU set)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1
