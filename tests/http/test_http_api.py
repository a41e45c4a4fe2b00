"""Routes and errors of CONTRACT §1 and §7 over real HTTP (waitress on loopback), on the real Engine."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from conftest import Receiver, running_server, video_body

pytestmark = pytest.mark.usefixtures("engine")


@pytest.fixture
def api(tmp_path: Path, engine, media_dir: Path):
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (srv, client):
        yield client


def uri(p: Path) -> str:
    return p.as_uri()


def test_sync_result_shape(api, short_video: Path) -> None:
    """§1/§7: sync 200 {op: {labels, segments}} with ms offsets on the interval grid."""
    st, _, body = api.call("POST", "/v1/video/vid-1", video_body(uri(short_video), vframe={"mode": 0, "interval": 1}))
    assert st == 200, body
    assert set(body) == {"pulp"}
    res = body["pulp"]
    assert res["labels"] and all(set(l) == {"label", "score"} for l in res["labels"])
    offsets = [c["offset"] for s in res["segments"] for c in s["cuts"]]
    assert offsets == [0, 1000, 2000, 3000]
    for seg in res["segments"]:
        assert seg["offset_begin"] == seg["cuts"][0]["offset"] and seg["offset_end"] == seg["cuts"][-1]["offset"]
        assert {"label", "score", "review"} <= set(seg["cuts"][0]["result"])


@pytest.mark.parametrize("body, message", [
    ({"data": {"uri": "x"}}, "empty op"),
    ({"data": {"uri": "x"}, "ops": []}, "empty op"),
    ({"data": {"uri": "file:///m/v.mp4"}, "ops": [{"op": "no_such_op"}]}, "bad op"),
    ({"data": {"uri": "file:///m/v.mp4"}, "ops": [{"op": "pulp"}, {"op": "pulp"}]}, "invalid parameters"),
    ({"data": {"uri": "ftp://example.com/v.mp4"}, "ops": [{"op": "pulp"}]}, "invalid parameters"),
    ({"data": {"uri": 5}, "ops": [{"op": "pulp"}]}, "invalid parameters"),
    ({"data": {"uri": "file:///m/v.mp4"}, "params": {"vframe": {"mode": 2}}, "ops": [{"op": "pulp"}]},
     "invalid mode, allow mode is [0, 1]"),
    ({"data": {"uri": "file:///m/v.mp4"}, "params": {"vframe": {"mode": 0, "interval": 10.5}}, "ops": [{"op": "pulp"}]},
     "invalid interval, allow interval is [0, 10]"),
    ({"data": {"uri": "file:///m/v.mp4"}, "params": {"vframe": {"ss": -1}}, "ops": [{"op": "pulp"}]}, "invalid starttime"),
    ({"data": {"uri": "file:///m/v.mp4"}, "params": {"vframe": {"t": -1}}, "ops": [{"op": "pulp"}]}, "invalid duration"),
    ([1, 2], "invalid parameters"),
])
def test_request_validation_errors(api, body, message: str) -> None:
    """§1/§2: documented 400 messages."""
    st, _, out = api.call("POST", "/v1/video/v1", body)
    assert (st, out["error"]) == (400, message) and set(out) <= {"error", "detail"}  # detail: issue 13


def test_bare_path_and_file_outside_media_root_refused(api, tmp_path: Path, short_video: Path) -> None:
    """§1: file:// only below the media root; bare paths never over HTTP."""
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(short_video.read_bytes())
    for u in (str(short_video), outside.as_uri(), "file://" + str(short_video.parent) + "/../" +
              str(outside.relative_to("/"))):
        st, _, out = api.call("POST", "/v1/video/v1", video_body(u))
        assert (st, out) == (400, {"error": "invalid parameters"}), u


def test_file_scheme_refused_without_media_root(tmp_path: Path, engine, short_video: Path) -> None:
    with running_server(tmp_path, engine) as (_, client):
        st, _, out = client.call("POST", "/v1/video/v1", video_body(uri(short_video)))
        # the documented message, and (issue 13) the reason, which used to be only in the server's log
        assert (st, out) == (400, {"error": "invalid parameters",
                                   "detail": "file:// URIs are disabled (no media root configured)"})


def test_media_errors(api, media_dir: Path) -> None:
    """§2: missing file → 424; not a video → 400 cannot open the file."""
    st, _, out = api.call("POST", "/v1/video/v1", video_body(uri(media_dir / "missing.mp4")))
    assert (st, out) == (424, {"error": "cannot find the video"})
    junk = media_dir / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    st, _, out = api.call("POST", "/v1/video/v1", video_body(uri(junk)))
    assert (st, out) == (400, {"error": "cannot open the file"})


@pytest.mark.parametrize("vid", ["a" * 257, "bad/id", "sp%20ace", "%C3%BC"])
def test_bad_video_id(api, short_video: Path, vid: str) -> None:
    """§1: video_id is 1–256 chars of [A-Za-z0-9_.:-]."""
    st, _, out = api.call("POST", "/v1/video/" + vid, video_body(uri(short_video)))
    assert st in (400, 404) and "error" in out
    if "/" not in vid:
        assert (st, out) == (400, {"error": "invalid parameters"})


def test_body_limits_and_types(api) -> None:
    """§1: > 1 MiB → 413; a non-JSON content type → 415; broken JSON → 400. All as {"error": msg}."""
    big = b'{"data":{"uri":"' + b"x" * (1024 * 1024) + b'"},"ops":[{"op":"pulp"}]}'
    st, _, out = api.call("POST", "/v1/video/v1", raw=big, headers={"Content-Type": "application/json"})
    assert (st, out) == (413, {"error": "request body too large"})
    st, _, out = api.call("POST", "/v1/video/v1", raw=b"<x/>", headers={"Content-Type": "text/xml"})
    assert (st, out) == (415, {"error": "unsupported media type"})
    st, _, out = api.call("POST", "/v1/video/v1", raw=b"{nope", headers={"Content-Type": "application/json"})
    assert (st, out) == (400, {"error": "invalid parameters"})


def test_unknown_route_and_method(api) -> None:
    """§7: 404 and 405 in the same error shape, never a traceback."""
    st, _, out = api.call("GET", "/v2/nothing")
    assert (st, out) == (404, {"error": "not found"})
    st, hdrs, out = api.call("DELETE", "/v1/jobs/video")
    assert (st, out) == (405, {"error": "method not allowed"})
    assert "GET" in hdrs.get("allow", "")
    st, _, out = api.call("GET", "/v1/video/abc")
    assert (st, out) == (405, {"error": "method not allowed"})


def test_async_job_lifecycle_and_listing(api, short_video: Path) -> None:
    """§7: async → {job}; GET job shows request/status/result; list by status with paging."""
    body = video_body(uri(short_video), vframe={"mode": 0, "interval": 2}, **{"async": True})
    ids = []
    for i in range(3):
        st, _, out = api.call("POST", f"/v1/video/vid-{i}", body)
        assert st == 200 and set(out) == {"job"}
        ids.append(out["job"])
    for job_id in ids:
        job = api.wait_status(job_id, {"FINISHED"})
    assert job["vid"] == "vid-2" and job["request"] == body
    assert job["result"]["pulp"]["segments"][0]["cuts"][0]["offset"] == 0
    assert job["created_at"].endswith("Z") and len(job["created_at"]) == 20
    st, _, page1 = api.call("GET", "/v1/jobs/video?status=FINISHED&limit=2")
    assert st == 200 and [j["id"] for j in page1] == ids[:2]
    st, _, page2 = api.call("GET", f"/v1/jobs/video?status=FINISHED&limit=2&marker={page1[-1]['id']}")
    assert [j["id"] for j in page2] == ids[2:]
    st, _, none = api.call("GET", "/v1/jobs/video?status=WAITING")
    assert (st, none) == (200, [])
    for bad in ("status=DONE", "limit=0", "limit=1001", "limit=x", "marker=unknown"):
        st, _, out = api.call("GET", "/v1/jobs/video?" + bad)
        assert (st, out) == (400, {"error": "invalid parameters"}), bad
    st, _, out = api.call("GET", "/v1/jobs/video/ffffffffffffffffffffffff")
    assert (st, out) == (404, {"error": "job not found"})


def test_async_media_error_fails_job(api, media_dir: Path, receiver: Receiver) -> None:
    """§2/§7: in async mode the media error is the job's error, it ends FAILED, and the final callback says so."""
    body = video_body(uri(media_dir / "gone.mp4"), hookURL=receiver.url("/final"), **{"async": True})
    st, _, out = api.call("POST", "/v1/video/lost", body)
    job = api.wait_status(out["job"], {"FAILED"})
    assert job["error"] == "cannot find the video" and "result" not in job
    (final,) = receiver.wait(lambda rs: len(rs) == 1)
    assert final.json() == {"id": "lost", "result": {}, "error": "cannot find the video"}


def test_kill_paths(tmp_path: Path, engine, media_dir: Path, short_video: Path) -> None:
    """§7 kill: form op=kill and ?op=kill cancel a WAITING job at once; finished → fail to cancel job;
    unknown → 404; another op → 400."""
    # The runner is stopped: the jobs stay WAITING until killed.
    with running_server(tmp_path, engine, media_root=str(media_dir), jobs=1) as (srv, api):
        srv.runner.stop()
        body = video_body(uri(short_video), **{"async": True})
        a = api.call("POST", "/v1/video/a", body)[2]["job"]
        b = api.call("POST", "/v1/video/b", body)[2]["job"]
        st, _, out = api.call("POST", f"/v1/jobs/video/{a}", raw=b"op=kill",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert st == 200 and out["status"] == "CANCELLED" and set(out) == {"status", "created_at", "updated_at"}
        st, _, out = api.call("POST", f"/v1/jobs/video/{b}?op=kill")
        assert st == 200 and out["status"] == "CANCELLED"
        assert api.call("GET", f"/v1/jobs/video/{b}")[2]["status"] == "CANCELLED"
        st, _, out = api.call("POST", f"/v1/jobs/video/{a}?op=kill")
        assert (st, out) == (400, {"error": "fail to cancel job"})
        st, _, out = api.call("POST", f"/v1/jobs/video/{a}?op=pause")
        assert (st, out) == (400, {"error": "invalid parameters"})
        st, _, out = api.call("POST", "/v1/jobs/video/0123456789abcdef01234567?op=kill")
        assert (st, out) == (404, {"error": "job not found"})


def test_kill_doing_job_stops_decoding_within_2s(tmp_path: Path, engine, media_dir: Path, long_video: Path,
                                                 receiver: Receiver) -> None:
    """§7: DOING → CANCELLED, and the engine stops decoding within 2 s."""
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (srv, api):
        body = video_body(uri(long_video), vframe={"mode": 0, "interval": 0.1}, hookURL=receiver.url("/final"),
                          ops=[{"op": "pulp", "hookURL_segment": receiver.url("/seg")}], **{"async": True})
        job_id = api.call("POST", "/v1/video/long", body)[2]["job"]
        api.wait_status(job_id, {"DOING"})
        deadline = time.monotonic() + 30
        while srv.metrics.frames_total < 20:  # decoding is under way (the whole video takes ~20 s)
            assert time.monotonic() < deadline
            time.sleep(0.05)
        t0 = time.monotonic()
        st, _, out = api.call("POST", f"/v1/jobs/video/{job_id}?op=kill")
        assert (st, out["status"]) == (200, "CANCELLED")
        while srv.runner.running or engine.stats()["jobs_running"]:
            assert time.monotonic() - t0 < 2.0, "decoding did not stop within 2 s"
            time.sleep(0.02)
        segs_at_stop = len(receiver.on("/seg"))
        job = api.call("GET", f"/v1/jobs/video/{job_id}")[2]
        assert job["status"] == "CANCELLED" and job["error"] == "context canceled"
        final = receiver.wait(lambda rs: any(r.path == "/final" for r in rs))
        assert [r.json() for r in final if r.path == "/final"] == [{"id": "long", "result": {}, "error": "context canceled"}]
        time.sleep(0.3)
        assert len(receiver.on("/seg")) == segs_at_stop == 0  # the open segment is not flushed on a kill


def test_sync_saturation_503(tmp_path: Path) -> None:
    """§7/issue: sync requests beyond the bound get 503 with a clear message, never a hang (FakeEngine:
    this is about the service's admission control only)."""
    import threading

    from fake_engine import FakeEngine

    with running_server(tmp_path, FakeEngine(), sync_concurrency=1, sync_wait=0.05, media_root=str(tmp_path),
                        ssrf_allow=[]) as (srv, api):
        slow = video_body("http://8.8.8.8/slow")  # never fetched: FakeEngine plays a slow video
        srv.service.guard.final_url = lambda u, **k: u  # no network in this test
        results: list[int] = []
        t = threading.Thread(target=lambda: results.append(api.call("POST", "/v1/video/a", slow)[0]))
        t.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        st, _, out = api.call("POST", "/v1/video/b", slow)
        assert (st, out) == (503, {"error": "server busy, retry later"})
        assert time.monotonic() - t0 < 1.0
        t.join()
        assert results == [200]
        metrics = api.call("GET", "/metrics")[2]
        assert "argus_sync_rejected_total 1" in metrics


def test_healthz_and_metrics(api, short_video: Path) -> None:
    st, _, h = api.call("GET", "/healthz")
    assert st == 200 and h["status"] == "ok" and h["database"] is True and "pulp" in h["ops"]
    api.call("POST", "/v1/video/m", video_body(uri(short_video), vframe={"mode": 0, "interval": 1}, **{"async": True}))
    deadline = time.monotonic() + 20
    while True:
        st, hdrs, text = api.call("GET", "/metrics")
        if 'argus_jobs{status="FINISHED"} 1' in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    assert hdrs["content-type"].startswith("text/plain; version=0.0.4")
    for name in ("argus_queue_depth 0", "argus_frames_total 4", "argus_frames_per_second",
                 "argus_callback_failures_total 0", 'argus_http_requests_total{method="POST",route="/v1/video/{video_id}"'):
        assert name in text, name


def test_idempotency_key_returns_the_same_job(api, short_video: Path) -> None:
    """Issue 13: the same Idempotency-Key and body give the same job (nothing runs twice); the same key with
    another body is 409 with the documented message and a detail; other keys and other callers are separate."""
    body = video_body(uri(short_video), vframe={"mode": 0, "interval": 2}, **{"async": True})
    key = {"Idempotency-Key": "order-42"}
    st, _, first = api.call("POST", "/v1/video/idem", body, headers=key)
    st2, _, again = api.call("POST", "/v1/video/idem", body, headers=key)
    assert st == st2 == 200 and first == again
    other = video_body(uri(short_video), vframe={"mode": 0, "interval": 3}, **{"async": True})
    st, _, clash = api.call("POST", "/v1/video/idem", other, headers=key)
    assert st == 409 and clash["error"] == "idempotency key reused with a different request"
    assert first["job"] in clash["detail"]
    st, _, fresh = api.call("POST", "/v1/video/idem", body, headers={"Idempotency-Key": "order-43"})
    assert st == 200 and fresh["job"] != first["job"]
    st, _, bad = api.call("POST", "/v1/video/idem", body, headers={"Idempotency-Key": "x" * 300})
    assert st == 400 and bad["error"] == "invalid parameters"
    api.wait_status(first["job"], {"FINISHED"})
    st, _, listing = api.call("GET", "/v1/jobs/video?limit=1000")
    assert sum(1 for j in listing if j["id"] == first["job"]) == 1
