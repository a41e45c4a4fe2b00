"""Peak memory (whole process tree) analysing a 30-minute video vs a 1-minute one, same content."""

from __future__ import annotations

import pytest

import _measure as m

TARGET = 1.1


@pytest.mark.parametrize("mode", [1, 0], ids=["keyframes", "interval5"])
def test_peak_rss_30min_vs_1min(report, benchmark, mode, v360_1min, v360_30min):
    """Each analysis runs in a fresh interpreter (Engine start → analyze → close); benchmark times the
    30-minute analysis (start-up included). Ratios of the tree's peak RSS, and of the sum of VmHWMs."""
    benchmark.group = "peak RSS 360p"
    short = m.rss_probe(v360_1min, mode)
    long_ = benchmark.pedantic(lambda: m.rss_probe(v360_30min, mode), rounds=1, iterations=1)
    assert long_["cuts"] > short["cuts"] > 0
    report(f"peak RSS 30 min / 1 min ({'keyframes' if mode else 'interval 5 s'}), tree peak",
           long_["tree_peak_kb"] / short["tree_peak_kb"], TARGET, better="lower",
           peak_1min_MB=short["tree_peak_kb"] / 1024, peak_30min_MB=long_["tree_peak_kb"] / 1024,
           cuts_1min=short["cuts"], cuts_30min=long_["cuts"])
    report(f"peak RSS 30 min / 1 min ({'keyframes' if mode else 'interval 5 s'}), sum of VmHWM",
           long_["hwm_sum_kb"] / short["hwm_sum_kb"], TARGET, better="lower",
           hwm_1min_MB=short["hwm_sum_kb"] / 1024, hwm_30min_MB=long_["hwm_sum_kb"] / 1024)
