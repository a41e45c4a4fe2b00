"""Live jobs in the service (issue 12 "Service"): the job GET shows the source's connection while it runs,
``/metrics`` counts live jobs, a kill stops one within 2 s, and a worker killed with SIGKILL mid-stream leaves the
job RESCHEDULED for another worker, whose offsets continue past the last ones delivered.

Real components: an RTMP publisher (the Debian ``ffmpeg`` CLI, ``-re`` on a looped clip of real photos) on
loopback, a real server and real workers (``argus worker`` processes with the real engine), real SQLite.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.live_publishers import free_port, live_clip, needs_ffmpeg, publishers, rtmp_args  # noqa: F401

from conftest import Receiver, running_server, video_body
from test_http_crash import kill9, start_worker, stop

pytestmark = needs_ffmpeg


def live_body(url: str, receiver: Receiver) -> dict:
    return video_body(url, ops=[{"op": "pulp", "hookURL_segment": receiver.url("/seg")}], **{"async": True},
                      vframe={"mode": 0, "interval": 0.5}, segment={"mode": 1, "interval": 1.0}, live={"timeout": 30})


def seg_offsets(receiver: Receiver) -> list[int]:
    """Cut offsets of the segment callbacks in arrival order, each message once: delivery is at least once (a
    worker killed between sending and marking a callback sent has it sent again, with the same ``webhook-id``,
    on which receivers de-duplicate)."""
    out, seen = [], set()
    for r in receiver.on("/seg"):
        if r.headers.get("webhook-id") in seen:
            continue
        seen.add(r.headers.get("webhook-id"))
        out.extend(c["offset"] for c in json.loads(r.body)["result"]["cuts"])
    return out


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in /metrics")


def test_live_job_shows_its_connection_and_is_killed_quickly(tmp_path: Path, engine, publishers, live_clip,
                                                             receiver: Receiver) -> None:
    args, url = rtmp_args(live_clip, free_port())
    publishers(args)
    with running_server(tmp_path, engine, ssrf_allow=["127.0.0.1/32"]) as (srv, api):
        st, _, out = api.call("POST", "/v1/video/live-1", live_body(url, receiver))
        assert st == 200, out
        job_id = out["job"]
        deadline = time.monotonic() + 60
        while True:
            job = api.call("GET", f"/v1/jobs/video/{job_id}")[2]
            if job.get("live", {}).get("connected") and job["live"]["last_frame_at"]:
                break
            assert job["status"] in ("WAITING", "DOING") and time.monotonic() < deadline, job
            time.sleep(0.2)
        live = job["live"]
        assert set(live) == {"connected", "reconnects", "last_frame_at", "lag_ms"} and live["reconnects"] == 0
        assert isinstance(live["lag_ms"], int) and live["lag_ms"] < 5000
        metrics = api.call("GET", "/metrics")[2]
        assert _metric(metrics, 'argus_live_jobs{connected="true"}') == 1
        receiver.wait(lambda rs: len(rs) >= 2, timeout=30)  # segments close while the stream runs
        t0 = time.monotonic()
        assert api.call("POST", f"/v1/jobs/video/{job_id}", {"op": "kill"})[0] == 200
        job = api.wait_status(job_id, {"CANCELLED"}, timeout=10)
        assert time.monotonic() - t0 < 2.5 and "live" not in job
        assert _metric(api.call("GET", "/metrics")[2], 'argus_live_jobs{connected="true"}') == 0


def test_worker_killed_mid_stream_resumes_with_growing_offsets(tmp_path: Path, media_dir: Path, publishers,
                                                               live_clip, receiver: Receiver) -> None:
    args, url = rtmp_args(live_clip, free_port())
    pub = publishers(args)
    db_url = f"sqlite:///{tmp_path / 'data' / 'argus.db'}"
    with running_server(tmp_path, None, media_root=str(media_dir), lease_seconds=1.5,
                        ssrf_allow=["127.0.0.1/32"]) as (srv, api):
        w1 = start_worker(db_url, media_dir, tmp_path / "w1", "--lease-seconds", "1.5", "--decoders", "1")
        w2 = None
        try:
            job_id = api.call("POST", "/v1/video/live-2", live_body(url, receiver))[2]["job"]
            receiver.wait(lambda rs: len(rs) >= 3, timeout=90)  # mid-stream: some segments are out
            kill9(w1)
            pub.restart()  # an ffmpeg -listen publisher serves one reader and exits when it goes
            before = seg_offsets(receiver)
            api.wait_status(job_id, {"RESCHEDULED"}, timeout=15)
            w2 = start_worker(db_url, media_dir, tmp_path / "w2", "--lease-seconds", "1.5", "--decoders", "1")
            n = len(receiver.on("/seg"))
            receiver.wait(lambda rs: len(rs) >= n + 3, timeout=90)
            after = seg_offsets(receiver)[len(before):]
            assert after and min(after) > max(before), (before[-5:], after[:5])  # the clock continued
            assert all(b > a for a, b in zip(after, after[1:]))
            assert api.call("POST", f"/v1/jobs/video/{job_id}", {"op": "kill"})[0] == 200
            api.wait_status(job_id, {"CANCELLED"}, timeout=10)
        finally:
            kill9(w1)
            if w2 is not None:
                stop(w2)
