"""Moving 1080p RGB frames between processes: FrameRing (slot indexes on pipes) vs a pickling Queue."""

from __future__ import annotations

import _measure as m

TARGET = 10.0
N_RING, N_QUEUE = 300, 60


def test_ring_vs_pickling_queue(report, benchmark, rounds):
    """Each round: one Queue transfer (setup) then one ring transfer (timed by pytest-benchmark, which also
    counts spawning the two processes); the ratio uses the transfer times only (start-up excluded)."""
    benchmark.group = "ring transfer 1080p RGB"
    t_ring: list[float] = []
    t_queue: list[float] = []
    benchmark.pedantic(lambda: t_ring.append(m.ring_transfer(N_RING)),
                       setup=lambda: t_queue.append(m.queue_transfer(N_QUEUE)),
                       rounds=rounds, warmup_rounds=1, iterations=1)
    skip = 1 if len(t_ring) > rounds else 0
    fps_ring = N_RING / m.median(t_ring[skip:])
    fps_queue = N_QUEUE / m.median(t_queue[skip:])
    report("ring vs pickling Queue, 1080p RGB frames/s", fps_ring / fps_queue, TARGET,
           fps_ring=fps_ring, fps_queue=fps_queue)
