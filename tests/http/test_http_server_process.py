"""``argus serve`` as a real process: port 0, JSON logs, graceful SIGTERM (the running job is given back,
no attempt spent) and a restart that finishes it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import REPO, Client, make_video, video_body


def serve(tmp_path: Path, media_dir: Path) -> tuple[subprocess.Popen, Client]:
    env = {**os.environ, "ARGUS_POLL_INTERVAL": "0.1", "ARGUS_CANCEL_POLL": "0.1"}
    p = subprocess.Popen([sys.executable, "-m", "argus_http.server", "serve", "--port", "0", "--data-dir",
                          str(tmp_path / "data"), "--media-root", str(media_dir), "--ssrf-allow", "127.0.0.1/32",
                          "--decoders", "1", "--jobs", "1"],
                         cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / "log.jsonl", "ab"),
                         text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
    assert m, line
    return p, Client(int(m.group(1)))


def test_serve_sigterm_releases_and_restart_finishes(tmp_path: Path, media_dir: Path) -> None:
    video = make_video(media_dir / "medium2.mp4", 20, fps=5, size=(64, 48), gop=25)
    p, api = serve(tmp_path, media_dir)
    try:
        assert api.call("GET", "/healthz")[2]["status"] == "ok"
        body = video_body(video.as_uri(), vframe={"mode": 0, "interval": 0.1}, **{"async": True})
        job_id = api.call("POST", "/v1/video/graceful", body)[2]["job"]
        api.wait_status(job_id, {"DOING"})
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
    finally:
        if p.poll() is None:
            p.kill()
    from argus_http.queue.tables import Tables, open_database

    t = Tables(open_database(f"sqlite:///{tmp_path / 'data' / 'argus.db'}"))
    row = t.Job.get(t.Job.job_id == job_id)
    assert (row.status, row.attempts) == ("RESCHEDULED", 0)
    logs = [json.loads(l) for l in (tmp_path / "log.jsonl").read_text().splitlines() if l.startswith("{")]
    assert any(l.get("msg") == "signal received; stopping" for l in logs)
    assert all({"ts", "level", "logger", "msg"} <= set(l) for l in logs)
    p2, api2 = serve(tmp_path, media_dir)
    try:
        job = api2.wait_status(job_id, {"FINISHED"}, timeout=60)
        assert len(job["result"]["pulp"]["segments"][0]["cuts"]) > 0
    finally:
        p2.send_signal(signal.SIGTERM)
        p2.wait(20)
    assert t.Job.get(t.Job.job_id == job_id).attempts == 1  # the interrupted run was given back, not charged
