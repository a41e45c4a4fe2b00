"""End to end: Engine.analyze with pulp vs a naive single-process loop, and vs the ideal overlap.

Workload: 720p GOP-25 H.264, mode 0, a dense interval (every frame is decoded either way), first
``SECONDS`` s of the file. The interval is set so decoding and inference cost about the same
(``ARGUS_BENCH_INTERVAL`` overrides; ``auto`` re-tunes it on this machine with ``_measure.pick_interval``).
t_decode and t_infer are measured alone, on one core each, in the same rounds as the engine and the naive
loop. The Engine is started once, outside the timed region.
"""

from __future__ import annotations

import os

import pytest

import _measure as m

TARGET = 0.9
SECONDS = float(os.environ.get("ARGUS_BENCH_SECONDS", "30"))


@pytest.fixture(scope="module")
def overlap(v720_g25):
    iv = os.environ.get("ARGUS_BENCH_INTERVAL", "0.16")
    interval = m.pick_interval(v720_g25, SECONDS)[0] if iv == "auto" else float(iv)
    ob = m.OverlapBench(v720_g25, interval, SECONDS)
    yield ob
    ob.close()


def test_engine_vs_naive_and_ideal_overlap(pair, report, benchmark, overlap):
    benchmark.group = "end-to-end pulp 720p"
    fns = overlap.fns()
    engine = fns.pop("engine")
    r = pair(engine, fns)
    fig = m.overlap_figures({"engine": r.target, **r.base}, overlap.frames)
    common = {"interval": overlap.interval, "frames": overlap.frames, "t_engine": r.target,
              "cpu_engine": r.target_cpu, "cpu_naive": r.base_cpu["naive"],
              "t_naive": fig["t_naive"], "t_decode": fig["t_decode"], "t_infer": fig["t_infer"],
              "speedup_vs_naive": fig["speedup"], "ideal_speedup": fig["ideal_speedup"]}
    report("engine speed-up vs ideal overlap (speedup/ideal)", fig["ratio_vs_ideal"], TARGET, **common)
    report("engine throughput vs slowest stage alone", fig["ratio_vs_slowest_stage"], TARGET,
           fps_engine=fig["fps_engine"], fps_slowest=fig["fps_slowest_stage"])
    report("(reference) engine vs both stages side by side in 2 processes, no transport",
           fig["ratio_vs_side_by_side"], TARGET, t_side_by_side=fig["t_side_by_side"])
