"""Sampling benchmarks: Argus' sampler vs bare PyAV loops on the same file (ISSUE 2 item 10, first two)."""

from __future__ import annotations

import pytest

import _measure as m

TARGET = 0.9


def test_keyframes_vs_bare_nonkey(pair, report, benchmark, rounds, v1080_g250):
    """Mode 1 on a 60 s 1080p GOP-250 file vs ``skip_frame='NONKEY'`` over every packet (and ffmpeg CLI)."""
    benchmark.group = "keyframes 1080p g250"
    fns = m.keyframe_fns(v1080_g250)  # also checks both yield the same offsets
    argus = fns.pop("argus")
    r = pair(argus, fns, 3 * rounds)  # ~0.1 s per call: more rounds
    report("keyframes 1080p GOP250 (argus vs bare NONKEY)", r.base["bare_nonkey"] / r.target, TARGET,
           cpu_ratio=r.base_cpu["bare_nonkey"] / r.target_cpu, t_argus=r.target,
           **{f"t_{k}": v for k, v in r.base.items()})


@pytest.mark.parametrize("gop", [25, 250, "25-mkv"])
def test_interval5_vs_best_bare(pair, report, benchmark, gop, v1080_g25, v1080_g250, v1080_g25_mkv):
    """Mode 0 every 5 s on 1080p GOP 25 / 250 vs the faster of bare decode-all and bare seek loops (and GOP 25
    in Matroska, whose keyframe index is read only at a seek)."""
    path = {25: v1080_g25, 250: v1080_g250, "25-mkv": v1080_g25_mkv}[gop]
    benchmark.group = f"interval 5 s 1080p g{gop}"
    fns = m.interval_fns(path, 5.0)  # also checks every path picks the same frames
    argus = fns.pop("argus")
    r = pair(argus, fns)
    best = min(r.base, key=r.base.get)
    best_cpu = min(r.base_cpu, key=r.base_cpu.get)
    report(f"interval 5 s 1080p GOP{gop} (argus vs fastest bare = {best})", r.base[best] / r.target, TARGET,
           cpu_ratio=r.base_cpu[best_cpu] / r.target_cpu, t_argus=r.target,
           **{f"t_{k}": v for k, v in r.base.items()})
