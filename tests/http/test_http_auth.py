"""Qiniu token auth (CONTRACT §11, ORIGINAL-BEHAVIOUR §13) and per-key job scoping."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from argus_http.auth import Authenticator, canonical_header, sign_request, signing_string
from argus_http.config import KeyPair

from conftest import running_server, video_body

KEYS = "alice-ak:alice-sk:1001,bob-ak:bob-sk:1002,worker-ak:worker-sk:0:queue"


def reference_sign(sk: str, text: str) -> str:
    """§13 written out independently: urlsafe_base64(HMAC-SHA1(sk, signingStr)), padding kept."""
    return base64.urlsafe_b64encode(hmac.new(sk.encode(), text.encode(), hashlib.sha1).digest()).decode()


def test_signing_string_matches_the_documented_algorithm() -> None:
    body = b'{"a":1}'
    text = signing_string("post", "/v1/video/x", "q=1", "ai.qiniuapi.com", "application/json",
                          [("X-Qiniu-Date", "20260102T150405Z")], body)
    assert text == (b"POST /v1/video/x?q=1\nHost: ai.qiniuapi.com\nContent-Type: application/json\n"
                    b"X-Qiniu-Date: 20260102T150405Z\n\n" + body)
    # octet-stream bodies and requests without a content type are not signed
    assert signing_string("POST", "/p", "", "h", "application/octet-stream", [], b"xx").endswith(b"\n\n")
    assert signing_string("GET", "/p", "", "h", "", [], b"") == b"GET /p\nHost: h\n\n"
    header = sign_request("AK", "SK", "GET", "/v1/jobs/video", "status=DOING", "h:1")
    assert header == "Qiniu AK:" + reference_sign("SK", "GET /v1/jobs/video?status=DOING\nHost: h:1\n\n")
    assert canonical_header("X_QINIU_DATE") == "X-Qiniu-Date"


def test_authenticator_variants_and_rejections() -> None:
    a = Authenticator([KeyPair("AK", "SK", "7")])
    body = b"op=kill"
    ct = "application/x-www-form-urlencoded"
    kb = "Qiniu AK:" + reference_sign("SK", f"POST /v1/jobs/video/1\nHost: h\nContent-Type: {ct}\n\nop=kill")
    assert a.verify(kb, "POST", "/v1/jobs/video/1", "", "h", ct, body, {}).uid == "7"
    # Go SDK: a Content-Type line even when none was sent
    go = "Qiniu AK:" + reference_sign("SK", "GET /x\nHost: h\nContent-Type: application/x-www-form-urlencoded\n\n")
    assert a.verify(go, "GET", "/x", "", "h", "", b"", {}) is not None
    # unpadded signature accepted too
    assert a.verify(kb.rstrip("="), "POST", "/v1/jobs/video/1", "", "h", ct, body, {}) is not None
    for bad in (kb.replace("AK:", "XX:"), kb[:-3] + "abc", "QBox " + kb[6:], "", "Qiniu nocolon"):
        assert a.verify(bad, "POST", "/v1/jobs/video/1", "", "h", ct, body, {}) is None
    assert a.verify(kb, "POST", "/v1/jobs/video/1", "", "h", ct, body + b"&x=1", {}) is None  # body tampered


class Signed:
    """A client that signs each request with one key pair."""

    def __init__(self, client, ak: str, sk: str) -> None:
        self.c, self.ak, self.sk = client, ak, sk

    def call(self, method: str, path: str, body=None, ctype: str = "application/json", raw: bytes | None = None):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        p, _, q = path.partition("?")
        headers = {"Authorization": sign_request(self.ak, self.sk, method, p, q, f"127.0.0.1:{self.c.port}",
                                                 ctype if data else "", data)}
        if data:
            headers["Content-Type"] = ctype
        return self.c.call(method, path, raw=data or None, headers=headers)


@pytest.fixture
def secured(tmp_path: Path, engine, media_dir: Path):
    with running_server(tmp_path, engine, media_root=str(media_dir), auth_keys=KEYS) as (srv, client):
        srv.runner.stop()  # keep jobs WAITING: this is about access, not running
        yield client


def test_missing_or_bad_token_is_401(secured, short_video: Path) -> None:
    body = video_body(short_video.as_uri(), **{"async": True})
    st, _, out = secured.call("POST", "/v1/video/a", body)
    assert (st, out) == (401, {"error": "bad token"})
    st, _, out = Signed(secured, "alice-ak", "wrong").call("POST", "/v1/video/a", body)
    assert (st, out) == (401, {"error": "bad token"})
    st, _, out = Signed(secured, "nobody", "x").call("GET", "/v1/jobs/video")
    assert st == 401
    # probes stay open
    assert secured.call("GET", "/healthz")[0] == 200
    assert secured.call("GET", "/openapi.json")[0] == 200


def test_jobs_are_scoped_per_key(secured, short_video: Path) -> None:
    """§11: jobs belong to the key's uid; another key's job is 404 (get, kill) and absent from lists."""
    alice, bob = Signed(secured, "alice-ak", "alice-sk"), Signed(secured, "bob-ak", "bob-sk")
    st, _, out = alice.call("POST", "/v1/video/a", video_body(short_video.as_uri(), **{"async": True}))
    assert st == 200
    job_id = out["job"]
    st, _, job = alice.call("GET", f"/v1/jobs/video/{job_id}")
    assert st == 200 and job["id"] == job_id
    assert [j["id"] for j in alice.call("GET", "/v1/jobs/video?status=WAITING")[2]] == [job_id]
    assert bob.call("GET", f"/v1/jobs/video/{job_id}")[:3:2] == (404, {"error": "job not found"})
    assert bob.call("GET", f"/v1/jobs/video/{job_id}/report")[:3:2] == (404, {"error": "job not found"})
    st, hdr, page = alice.call("GET", f"/v1/jobs/video/{job_id}/report")  # CONTRACT §14, scoped like the GET
    assert st == 200 and hdr["content-type"].startswith("text/html") and "WAITING" in page
    assert bob.call("GET", "/v1/jobs/video")[2] == []
    st, _, out = bob.call("POST", f"/v1/jobs/video/{job_id}", raw=b"op=kill",
                          ctype="application/x-www-form-urlencoded")
    assert (st, out) == (404, {"error": "job not found"})
    st, _, out = alice.call("POST", f"/v1/jobs/video/{job_id}", raw=b"op=kill",
                            ctype="application/x-www-form-urlencoded")
    assert (st, out["status"]) == (200, "CANCELLED")


def test_queue_api_needs_a_queue_key(secured) -> None:
    alice = Signed(secured, "alice-ak", "alice-sk")
    worker = Signed(secured, "worker-ak", "worker-sk")
    assert alice.call("GET", "/v1/jobs?number=1")[:3:2] == (403, {"error": "forbidden"})
    st, _, out = worker.call("GET", "/v1/jobs?number=1")
    assert (st, out) == (200, [])
