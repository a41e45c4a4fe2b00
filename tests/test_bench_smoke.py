"""The benchmarks are not run by the test command (they need a quiet machine), so they could rot unseen: after
the restructure ``bench/_measure.py`` imported ``open_session`` from where it no longer lived and every
engine benchmark failed. This keeps them importable and their model loading working, cheaply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
