"""pytest-benchmark suites for Argus: ``pytest bench --benchmark-enable`` (from the repository root).

Not collected by the default ``pytest`` run (``testpaths = ["tests"]``). Every benchmark times Argus' path
with pytest-benchmark and its baseline in the same rounds (interleaved, via pedantic's ``setup``), then
prints ``ratio`` and ``target`` and stores both in ``extra_info`` (``--benchmark-json`` keeps them).
Targets are reported, not asserted, unless ``--bench-assert`` is given: wall-clock figures on a shared
2-core machine are evidence, not a unit test.

Options: ``--bench-rounds N`` (timed rounds per benchmark, default 3), ``--bench-assert``.
Videos are generated on first use into ``$ARGUS_BENCH_CACHE`` or ``~/.cache/argus-bench``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _media  # noqa: E402

_REPORT_KEY = pytest.StashKey[list]()


def pytest_addoption(parser):
    g = parser.getgroup("argus-bench")
    g.addoption("--bench-rounds", type=int, default=3, help="timed rounds per benchmark (median is used)")
    g.addoption("--bench-assert", action="store_true", help="fail a benchmark whose ratio misses its target")


def pytest_configure(config):
    config.stash[_REPORT_KEY] = []


@pytest.fixture(scope="session")
def rounds(pytestconfig) -> int:
    return max(1, pytestconfig.getoption("--bench-rounds"))


@pytest.fixture
def report(request, pytestconfig, benchmark):
    """``report(name, ratio, target, **figures)``: print, remember for the summary, maybe assert."""

    def _report(name: str, ratio: float, target: float, better: str = "higher", **figures) -> None:
        met = ratio >= target if better == "higher" else ratio <= target
        benchmark.extra_info.update({"ratio": ratio, "target": target, "met": met, **figures})
        figs = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items())
        cmp = "≥" if better == "higher" else "≤"
        line = f"{name}: ratio {ratio:.3f} (target {cmp} {target}) {'MET' if met else 'MISSED'}  [{figs}]"
        print(line)
        pytestconfig.stash[_REPORT_KEY].append(line)
        if pytestconfig.getoption("--bench-assert"):
            assert met, line

    return _report


def pytest_terminal_summary(terminalreporter, config):
    lines = config.stash.get(_REPORT_KEY, [])
    if lines:
        terminalreporter.section("argus benchmark ratios")
        for line in lines:
            terminalreporter.write_line(line)


# -- videos (session-cached; generated once into the cache dir) ---------------------------------------
@pytest.fixture(scope="session")
def v1080_g250() -> Path:
    return _media.video("1080p", 250, 60)


@pytest.fixture(scope="session")
def v1080_g25() -> Path:
    return _media.video("1080p", 25, 60)


@pytest.fixture(scope="session")
def v1080_g25_mkv(v1080_g25) -> Path:
    return _media.remuxed(v1080_g25, "mkv")


@pytest.fixture(scope="session")
def v720_g25() -> Path:
    return _media.video("720p", 25, 60)


@pytest.fixture(scope="session")
def v360_1min() -> Path:
    return _media.video("360p", 250, 60, preset="ultrafast")


@pytest.fixture(scope="session")
def v360_30min() -> Path:
    return _media.video("360p", 250, 1800, preset="ultrafast")


@pytest.fixture
def pair(benchmark, rounds):
    """``pair(target, baselines) -> Pair``: medians of wall-clock and CPU seconds, target and baselines.

    pytest-benchmark times ``target``; each round's ``setup`` runs every baseline first (timed here, not by
    pytest-benchmark), so target and baselines alternate round by round. One warm-up round is dropped.
    CPU seconds cover this process and its child processes (``_measure.tree_cpu``).
    """
    from _measure import median, timed, tree_cpu

    def _pair(target, baselines: dict, n_rounds: int | None = None) -> Pair:
        n = n_rounds or rounds
        base: dict[str, list[float]] = {k: [] for k in baselines}
        base_cpu: dict[str, list[float]] = {k: [] for k in baselines}
        mine: list[float] = []
        mine_cpu: list[float] = []

        def setup():
            for k, fn in baselines.items():
                c0 = tree_cpu()
                base[k].append(timed(fn)[0])
                base_cpu[k].append(tree_cpu() - c0)

        def run():
            c0 = tree_cpu()
            dt, out = timed(target)
            mine_cpu.append(tree_cpu() - c0)
            mine.append(dt)
            return out

        benchmark.pedantic(run, setup=setup, rounds=n, warmup_rounds=1, iterations=1)
        skip = 1 if len(mine) > n else 0  # the warm-up round (absent when benchmarks are disabled)
        return Pair(median(mine[skip:]), {k: median(v[skip:]) for k, v in base.items()},
                    median(mine_cpu[skip:]), {k: median(v[skip:]) for k, v in base_cpu.items()})

    return _pair


class Pair(NamedTuple):
    target: float
    base: dict
    target_cpu: float
    base_cpu: dict
