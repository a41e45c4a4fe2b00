"""README.md's Python examples run as written (issue 13): each ```python block is executed as a script in a
folder holding a real ``movie.mp4``, in a fresh interpreter (spawn start method, like any embedder)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from argus_core.pipeline.ring import leftover_segments

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def run_script(script: Path) -> tuple[subprocess.Popen, str]:
    # the checkout under test, not whatever copy the venv's editable install points at
    env = {**os.environ, "PYTHONPATH": str(README.parent)}
    proc = subprocess.Popen([sys.executable, str(script)], cwd=script.parent, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    _out, err = proc.communicate(timeout=300)
    return proc, err


def segments_of(pid: int) -> list[str]:
    """Shared-memory segments the script's process created (names carry the creator's pid): other tests
    running at the same time may hold segments of their own."""
    return [n for n in leftover_segments() if n.startswith(f"argus-{pid}-")]


def test_readme_has_python_examples():
    assert python_blocks(), "README.md lost its Python example"


@pytest.mark.parametrize("index", range(len(python_blocks())))
def test_readme_python_block_runs(index, vids, tmp_path):
    shutil.copy(vids["photos"], tmp_path / "movie.mp4")
    script = tmp_path / "example.py"
    script.write_text(python_blocks()[index])
    proc, stderr = run_script(script)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Traceback" not in stderr and "leaked" not in stderr, stderr[-3000:]
    assert not segments_of(proc.pid)


def test_missing_main_guard_is_a_clear_error_and_leaks_nothing(vids, tmp_path):
    # The classic embedder mistake: an Engine at a script's top level. The spawned children import the
    # script again; that must end in one clear error naming the fix, and no shared memory left behind.
    shutil.copy(vids["photos"], tmp_path / "movie.mp4")
    script = tmp_path / "unguarded.py"
    script.write_text("from argus_core import Engine\n"
                      "engine = Engine(decoders=1, workers=1)\n"
                      "engine.close()\n")
    proc, stderr = run_script(script)
    assert proc.returncode != 0
    assert '__name__ == "__main__"' in stderr, stderr[-3000:]
    assert "leaked shared_memory" not in stderr, stderr[-3000:]
    assert not segments_of(proc.pid)
