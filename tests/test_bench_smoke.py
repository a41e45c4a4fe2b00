"""The benchmarks are not run by the test command (they need a quiet machine), so they could rot unseen: after
the restructure ``bench/_measure.py`` imported ``open_session`` from where it no longer lived and every
engine benchmark failed. This keeps them importable and their model loading working, cheaply."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def test_every_bench_module_imports() -> None:
    """In one fresh interpreter (a module-level import of a name that moved fails here)."""
    names = sorted(p.stem for p in BENCH.glob("*.py"))
    code = "import importlib, sys\nfor n in sys.argv[1:]:\n    importlib.import_module(n)\n"
    p = subprocess.run([sys.executable, "-c", code, *names], capture_output=True, text=True, timeout=300,
                       cwd=BENCH, env={"PYTHONPATH": f"{BENCH.parent}:{BENCH}", "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0, p.stderr[-3000:]


def test_measure_loads_the_pulp_model() -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import _measure

        session, manifest = _measure._pulp_session()
    finally:
        sys.path.remove(str(BENCH))
    assert session.get_inputs() and manifest.name == "nsfwjs"


def test_compare_parses_its_arguments() -> None:
    env_path = str(BENCH.parent)
    p = subprocess.run([sys.executable, str(BENCH / "compare.py"), "--help"], capture_output=True, text=True,
                       timeout=120, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"})
    assert p.returncode == 0 and "--engine-ref" in p.stdout, p.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="the ffmpeg CLI is not installed (Debian package ffmpeg)")
def test_bench_live_smallest_case(tmp_path) -> None:
    """bench_live's smallest case end to end (issue 12): one RTMP paced publisher, a few seconds, the real
    engine. Checks that the harness still maps segments to publish times (a marker was seen, latencies came
    out non-negative) — never how fast, which needs a quiet machine."""
    out = tmp_path / "live.json"
    p = subprocess.run([sys.executable, "-m", "bench.bench_live", "--only", "latency", "--protos", "rtmp",
                        "--seconds", "9", "--floor-seconds", "0", "--json", str(out)],
                       capture_output=True, text=True, timeout=180, cwd=BENCH.parent,
                       env={**os.environ, "PYTHONPATH": str(BENCH.parent)})
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(out.read_text())["latency"]["rtmp"]
    assert r["segments"] >= 1, r
    assert r["backward_or_duplicate"] == 0 and r["publisher_error"] is None, r
    assert min(r["window_series"]) >= 0, r  # a segment cannot close before its last frame was published
