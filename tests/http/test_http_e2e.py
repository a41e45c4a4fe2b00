"""End to end on the real Engine and real videos: async jobs with signed callbacks (§7), the vframe task
(§9), the queue API (§8) and a remote worker process attached through it."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from pathlib import Path

import av

from argus_core import verdict
from argus_http.delivery import webhooks
from argus_http.auth import sign_request

from conftest import REPO, Receiver, running_server, video_body

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_async_job_callbacks_signed_and_equal_to_sync(tmp_path: Path, engine, media_dir: Path, short_video: Path,
                                                      receiver: Receiver) -> None:
    """§7: segment, op and final callbacks arrive with the documented bodies and valid Standard Webhooks
    signatures; the job is FINISHED with the same result as the sync call."""
    params = {"vframe": {"mode": 0, "interval": 1}, "segment": {"mode": 1, "interval": 2}}
    ops = [{"op": "pulp", "hookURL": receiver.url("/op"), "hookURL_segment": receiver.url("/seg")}]
    with running_server(tmp_path, engine, media_root=str(media_dir), webhook_secret=SECRET) as (_, api):
        st, _, sync = api.call("POST", "/v1/video/clip-1", video_body(short_video.as_uri(), ops=[{"op": "pulp"}], **params))
        assert st == 200
        body = video_body(short_video.as_uri(), ops=ops, hookURL=receiver.url("/final"), **{"async": True}, **params)
        job_id = api.call("POST", "/v1/video/clip-1", body)[2]["job"]
        # Callbacks to different URLs are not ordered among themselves: wait for all four.
        received = receiver.wait(lambda rs: len(rs) >= 4, timeout=30)
        job = api.wait_status(job_id, {"FINISHED"})
        time.sleep(0.3)
        assert len(receiver.requests) == 4  # and nothing more
    assert job["result"] == sync
    segs = [r.json() for r in received if r.path == "/seg"]
    assert len(segs) == 2 == len(sync["pulp"]["segments"])
    assert segs == [{"id": "clip-1", "op": "pulp", "result": s} for s in sync["pulp"]["segments"]]
    (op_cb,) = [r.json() for r in received if r.path == "/op"]
    assert op_cb == {"id": "clip-1", "op": "pulp", "code": 0, "message": "", "result": sync["pulp"]}
    (final,) = [r.json() for r in received if r.path == "/final"]
    assert final == {"id": "clip-1", "result": sync, "suggestion": sync["pulp"]["suggestion"]}  # §14
    ids = set()
    for r in received:
        assert webhooks.verify(SECRET, r.headers, r.body), r.path
        assert not webhooks.verify(SECRET, r.headers, r.body + b" ")  # the signature covers the body
        assert r.headers["Content-Type"] == "application/json"
        ids.add(r.headers["webhook-id"])
    assert len(ids) == len(received) == 4


def test_no_signature_header_without_secret(tmp_path: Path, engine, media_dir: Path, short_video: Path,
                                            receiver: Receiver) -> None:
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (_, api):
        api.call("POST", "/v1/video/x", video_body(short_video.as_uri(), hookURL=receiver.url("/f"), **{"async": True}))
        (r,) = receiver.wait(lambda rs: len(rs) == 1, timeout=30)
    assert "webhook-signature" not in {k.lower() for k in r.headers}
    assert r.headers["webhook-id"].endswith(".final")


def test_vframe_task_callbacks(tmp_path: Path, engine, media_dir: Path, short_video: Path, receiver: Receiver) -> None:
    """§9: begin, then one cuts call per frame with {offset, uri} (a real JPEG), then end; one token per run."""
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (_, api):
        task = {"data": {"uri": short_video.as_uri()}, "params": {"mode": 0, "interval": 1},
                "callback": receiver.url("/vf/")}
        st, _, out = api.call("POST", "/v1/vframe", task)
        assert st == 200
        job_id = out["job"]
        got = receiver.wait(lambda rs: any("/end/" in r.path for r in rs), timeout=30)
        job = api.wait_status(job_id, {"FINISHED"}, kind="vframe")
        st, _, bad = api.call("POST", "/v1/vframe", {**task, "params": {"mode": 7}})
        assert (st, bad) == (400, {"error": "invalid mode, allow mode is [0, 1]"})
    steps = [r.path.split("/")[2] for r in got]
    assert steps == ["begin", "cuts", "cuts", "cuts", "cuts", "end"]
    tokens = {r.path.split("/")[4] for r in got}
    assert len(tokens) == 1 and all(r.path.split("/")[3] == job_id for r in got)
    cuts = [c for r in got if "/cuts/" in r.path for c in r.json()["result"]["cuts"]]
    assert [c["offset"] for c in cuts] == [0, 1000, 2000, 3000]
    for c in cuts:
        path = Path(c["uri"].removeprefix("file://"))
        with av.open(str(path)) as img:
            frame = next(img.decode(video=0))
            assert (frame.width, frame.height) == (96, 64)
    assert got[-1].json() == {"code": 0, "message": ""}
    assert job["status"] == "FINISHED" and job["result"] == {"cuts": 4}


def test_vframe_task_media_error(tmp_path: Path, engine, media_dir: Path, receiver: Receiver) -> None:
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (_, api):
        task = {"data": {"uri": (media_dir / "absent.mp4").as_uri()}, "callback": receiver.url("/vf")}
        job_id = api.call("POST", "/v1/vframe", task)[2]["job"]
        got = receiver.wait(lambda rs: any("/end/" in r.path for r in rs), timeout=30)
        job = api.wait_status(job_id, {"FAILED"}, kind="vframe")
    assert [r.path.split("/")[2] for r in got] == ["begin", "end"]
    assert got[-1].json() == {"code": 424, "message": "cannot find the video"}
    assert job["error"] == "cannot find the video"


def test_queue_api_over_http(tmp_path: Path, receiver: Receiver) -> None:
    """§8: POST /v1/jobs → {id}; GET /v1/jobs?number leases with timeout; touch/finish need the lease
    (409 lease lost otherwise); events become callbacks; the job ends FINISHED with its result."""
    with running_server(tmp_path, None, lease_seconds=30) as (_, api):
        job = {"data": {"uri": "http://127.0.0.1:9/v.mp4", "attribute": {"id": "q-1"}},
               "params": {"hookURL": receiver.url("/final")},
               "ops": [{"op": "pulp", "hookURL_segment": receiver.url("/seg")}]}
        st, _, out = api.call("POST", "/v1/jobs", {"uid": 7, "job": job})
        assert st == 200 and set(out) == {"id"}
        job_id = out["id"]
        st, _, leases = api.call("GET", "/v1/jobs?number=5")
        assert st == 200 and len(leases) == 1
        lease = leases[0]
        assert (lease["id"], lease["uid"], lease["job"], lease["timeout"]) == (job_id, 7, job, 30)
        assert api.call("GET", "/v1/jobs?number=5")[2] == []
        st, _, out = api.call("POST", f"/v1/job/{job_id}/touch", {"lease": "wrong"})
        assert (st, out) == (409, {"error": "lease lost"})
        st, _, out = api.call("POST", f"/v1/job/{job_id}/touch")
        assert (st, out) == (409, {"error": "lease lost"})
        st, _, out = api.call("POST", f"/v1/job/{job_id}/touch?lease={lease['lease']}")
        assert (st, out) == (200, {"timeout": 30})
        seg = {"offset_begin": 0, "offset_end": 0, "labels": [{"label": "2", "score": 0.9}],
               "cuts": [{"offset": 0, "result": {}}]}
        st, _, _ = api.call("POST", f"/v1/job/{job_id}/events",
                            {"lease": lease["lease"], "events": [{"type": "segment", "op": "pulp", "index": 0,
                                                                  "result": seg}]})
        assert st == 200
        result = {"pulp": {"labels": [{"label": "2", "score": 0.9}], "segments": [seg]}}
        st, _, out = api.call("POST", f"/v1/job/{job_id}/finish", {"lease": lease["lease"], "result": result})
        assert (st, out) == (200, {})
        st, _, out = api.call("POST", f"/v1/job/{job_id}/finish", {"lease": lease["lease"], "result": result})
        assert (st, out) == (409, {"error": "lease lost"})
        got = api.call("GET", f"/v1/jobs/video/{job_id}")[2]
        assert got["status"] == "FINISHED" and got["result"] == result and got["vid"] == "q-1"
        recv = receiver.wait(lambda rs: len(rs) == 2)
        assert {r.path: r.json() for r in recv} == {"/seg": {"id": "q-1", "op": "pulp", "result": seg},
                                                   "/final": {"id": "q-1", "result": result}}
        for bad in ({"job": {"data": {"uri": "x"}}}, {"uid": [1], "job": job}, {"uid": 1}):
            st, _, out = api.call("POST", "/v1/jobs", bad)
            assert st == 400 and "error" in out
        st, _, out = api.call("GET", "/v1/jobs?number=0")
        assert (st, out) == (400, {"error": "invalid parameters"})
        # An API-only server (no engine) refuses sync analysis clearly.
        st, _, out = api.call("POST", "/v1/video/s", video_body("http://127.0.0.1:9/v.mp4"))
        assert st == 503 and "error" in out


def test_remote_worker_through_queue_api(tmp_path: Path, media_dir: Path, short_video: Path, engine,
                                         receiver: Receiver) -> None:
    """``argus worker --queue-url``: a worker process (real Engine) signs its queue calls with a queue key,
    runs the job and reports through the API; the server sends the callbacks."""
    keys = "client:csecret:alice,worker:wsecret:ops:queue"
    with running_server(tmp_path, None, media_root=str(media_dir), auth_keys=keys) as (srv, api):
        env = {**os.environ, "ARGUS_MEDIA_ROOT": str(media_dir), "ARGUS_SSRF_ALLOW": "127.0.0.1/32",
               "ARGUS_POLL_INTERVAL": "0.1", "ARGUS_CANCEL_POLL": "0.2", "ARGUS_DATA_DIR": str(tmp_path / "w")}
        proc = subprocess.Popen([sys.executable, "-m", "argus_http.server", "worker", "--queue-url", api.base,
                                 "--access-key", "worker", "--secret-key", "wsecret", "--decoders", "1",
                                 "--log-level", "warning"], cwd=REPO, env=env)
        try:
            body = video_body(short_video.as_uri(), vframe={"mode": 0, "interval": 1},
                              hookURL=receiver.url("/final"), **{"async": True})
            raw = video_body_bytes(body)
            path = "/v1/video/remote-1"
            auth = sign_request("client", "csecret", "POST", path, "", f"127.0.0.1:{srv.port}",
                                "application/json", raw)
            st, _, out = api.call("POST", path, raw=raw, headers={"Content-Type": "application/json",
                                                                   "Authorization": auth})
            assert st == 200, out
            (final,) = receiver.wait(lambda rs: len(rs) == 1, timeout=60)
        finally:
            proc.terminate()
            proc.wait(20)
    expected = engine.analyze({"data": {"uri": str(short_video)}, "params": {"vframe": {"mode": 0, "interval": 1}},
                               "ops": [{"op": "pulp"}]})
    overall = verdict.annotate(expected)  # §14: the remote worker adds the verdict too
    assert final.json() == {"id": "remote-1", "result": expected, "suggestion": overall}


def video_body_bytes(body: dict) -> bytes:
    import json

    return json.dumps(body).encode()


def test_sync_mode_sends_no_callbacks(tmp_path: Path, engine, media_dir: Path, short_video: Path,
                                      receiver: Receiver) -> None:
    """§7: no callbacks in sync mode, whatever hooks the request names."""
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (_, api):
        body = video_body(short_video.as_uri(), hookURL=receiver.url("/final"),
                          ops=[{"op": "pulp", "hookURL": receiver.url("/op"), "hookURL_segment": receiver.url("/seg")}])
        st, _, out = api.call("POST", "/v1/video/sync-hooks", body)
        assert st == 200 and "pulp" in out
        time.sleep(0.5)
    assert receiver.hits == {}
