"""``argus analyze rtmp://… --op pulp`` (issue 12): segments as NDJSON lines as they close, and Ctrl-C (or
SIGTERM) ends the analysis with the final result as the last line — no traceback, exit 0. A real RTMP
publisher (the Debian ffmpeg CLI) on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .live_publishers import free_port, live_clip, needs_ffmpeg, publishers, rtmp_args  # noqa: F401

pytestmark = needs_ffmpeg
REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_live_cli_prints_segments_then_the_result(tmp_path, publishers, live_clip, sig):
    args, url = rtmp_args(live_clip, free_port())
    publishers(args)
    proc = subprocess.Popen([sys.executable, "-m", "argus_http.cli", "analyze", url, "--op", "pulp", "--mode", "0",
                             "--interval", "0.5", "--segment-mode", "1", "--segment-interval", "1"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, start_new_session=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while len(lines) < 3:  # segments arrive while the stream runs, one line each
            line = proc.stdout.readline()
            assert line, proc.stderr.read()[-2000:]
            lines.append(json.loads(line))
            assert time.monotonic() < deadline
        os.killpg(proc.pid, sig)  # as a terminal's Ctrl-C reaches the whole group
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    lines += [json.loads(x) for x in out.splitlines()]
    assert proc.returncode == 0, err[-2000:]
    assert "Traceback" not in err and "connected" in err
    segs = [x for x in lines if x["type"] == "segment"]
    assert len(segs) >= 3 and lines[-1]["type"] == "result"
    assert all(x["type"] in ("segment", "discontinuity") for x in lines[:-1])
    offsets = [c["offset"] for s in segs for c in s["segment"]["cuts"]]
    assert all(b > a for a, b in zip(offsets, offsets[1:]))
    assert all(s["op"] == "pulp" and s["segment"]["suggestion"] in ("pass", "review", "block") for s in segs)
    final = lines[-1]["result"]["pulp"]["segments"]
    # the result holds every segment printed, and the one open when it stopped (closed by the stop)
    assert [s["offset_begin"] for s in final][:len(segs)] == [s["segment"]["offset_begin"] for s in segs]
    assert lines[-1]["suggestion"] in ("pass", "review", "block")
