"""What a newcomer meets on the command line (issue 13): errors that say why, paths relative to where they
stand, no tracebacks on Ctrl-C."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def argus(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "argus_http.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_unknown_op_names_the_known_ones(tmp_path, vids):
    shutil.copy(vids["photos"], tmp_path / "movie.mp4")
    p = argus("analyze", "movie.mp4", "--op", "nsfw", cwd=tmp_path)
    body = json.loads(p.stdout)
    assert p.returncode == 2 and body["error"] == "bad op"  # the documented message, exactly
    assert "'nsfw'" in body["detail"] and "pulp" in body["detail"]


def test_missing_video_names_the_path_it_looked_for(tmp_path):
    p = argus("analyze", "movie.mp4", "--op", "pulp", cwd=tmp_path)
    body = json.loads(p.stdout)
    assert p.returncode == 2 and body["error"] == "cannot find the video"
    assert str(tmp_path / "movie.mp4") in body["detail"]
    assert "Traceback" not in p.stderr


def test_relative_paths_work_through_run_sh(tmp_path, vids):
    # run.sh once changed to the repo root, so a video next to the caller was "not found"
    if not (REPO / ".venv" / "bin" / "argus").exists():
        pytest.skip("no .venv with argus installed")
    shutil.copy(vids["photos"], tmp_path / "movie.mp4")
    p = subprocess.run(["bash", str(REPO / "scripts" / "run.sh"), "analyze", "movie.mp4", "--op", "pulp",
                        "--mode", "0", "--interval", "5"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "pulp" in json.loads(p.stdout)


def test_audio_only_file_says_no_video_stream(tmp_path):
    import av
    import numpy as np

    path = tmp_path / "sound.m4a"
    with av.open(str(path), "w") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for pkt in s.encode(frame):
            c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)
    p = argus("analyze", str(path), "--op", "pulp", cwd=tmp_path)
    body = json.loads(p.stdout)
    assert body["error"] == "cannot open the file" and "no video stream" in body["detail"]


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _analyze_mid_run(tmp_path: Path, vids) -> subprocess.Popen:
    """``argus analyze`` (its own session, like a job under a shell) caught while it decodes: the engine's
    children are up and the 60 s video at 20 ms steps (3,000 frames) is far from done."""
    shutil.copy(vids["photos_long"], tmp_path / "long.mp4")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "argus_http.cli", "analyze", "long.mp4", "--op", "pulp", "--mode",
                             "0", "--interval", "0.02"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    deadline = time.monotonic() + 120
    while len(_children(proc.pid)) < 2 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)  # decoder and inference worker (the resource tracker is a child too)
    time.sleep(3)  # into decoding
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    return proc


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)], ids=["ctrl-c", "sigterm"])
@pytest.mark.parametrize("whole_group", [False, True], ids=["parent", "process-group"])
def test_interrupt_stops_cleanly(tmp_path, vids, sig, code, whole_group):
    """Issue 13 item 5: Ctrl-C printed a ``KeyboardInterrupt`` traceback; SIGTERM printed a child's "decoding
    ended early after 148 frames: " with no reason and a resource-tracker warning. Now the parent stops its
    children and frees the ring, whether the signal reaches it alone (``kill PID``) or the whole group (a
    terminal's Ctrl-C, ``timeout``, systemd, ``kill -- -PGID``)."""
    proc = _analyze_mid_run(tmp_path, vids)
    kids = _children(proc.pid)
    if whole_group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    for noise in ("Traceback", "KeyboardInterrupt", "ended early", "resource_tracker", "leaked"):
        assert noise not in err, err[-2000:]
    assert json.loads(out) == {"error": "cancelled"}
    assert not list(Path("/dev/shm").glob(f"argus-{proc.pid}-*"))
    deadline = time.monotonic() + 5  # the resource tracker exits when the last pipe to it closes
    while [k for k in kids if Path(f"/proc/{k}").exists()] and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = {k: Path(f"/proc/{k}/cmdline").read_bytes()[:200] for k in kids if Path(f"/proc/{k}").exists()}
    assert not alive, f"engine children outlived the command: {alive}"
