"""Issue 10: Qiniu tokens made by the official ``qiniu`` SDK (QiniuMacAuth) — accepted when intact; refused
when the body is not covered by the signature, when tampered, or when the signed X-Qiniu-Date is stale."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from argus_http.auth import Authenticator
from argus_http.config import KeyPair
from conftest import running_server, video_body

qiniu = pytest.importorskip("qiniu")

AK, SK = "alice-ak", "alice-sk"
NOW = 1_767_366_305.0  # 2026-01-02T15:05:05Z


def _date(t: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(t))


def sdk_token(method: str, url: str, body: bytes = b"", content_type: str | None = None,
              headers: dict[str, str] | None = None) -> str:
    mac = qiniu.QiniuMacAuth(AK, SK, disable_qiniu_timestamp_signature=True)
    qheaders = mac.qiniu_headers(headers or {})
    return "Qiniu " + mac.token_of_request(method, "h", url, qheaders, content_type, body or None)


def verify(a: Authenticator, token: str, method: str, path: str, body: bytes = b"", ct: str = "",
           headers: dict[str, str] | None = None):
    return a.verify(token, method, path, "", "h", ct, body, headers or {})


@pytest.fixture
def auth() -> Authenticator:
    return Authenticator([KeyPair(AK, SK, "7")], max_skew=900, clock=lambda: NOW)


def test_sdk_tokens_accepted(auth):
    body = b'{"data":{"uri":"x"}}'
    t = sdk_token("POST", "http://h/v1/video/x", body, "application/json")
    assert verify(auth, t, "POST", "/v1/video/x", body, "application/json").uid == "7"
    assert verify(auth, sdk_token("GET", "http://h/v1/jobs/video"), "GET", "/v1/jobs/video") is not None
    hdr = {"X-Qiniu-Date": _date(NOW - 60)}
    t = sdk_token("POST", "http://h/v1/video/x", body, "application/json", hdr)
    assert verify(auth, t, "POST", "/v1/video/x", body, "application/json", hdr) is not None


def test_tampered_sdk_tokens_refused(auth):
    body = b'{"data":{"uri":"x"}}'
    t = sdk_token("POST", "http://h/v1/video/x", body, "application/json")
    assert verify(auth, t, "POST", "/v1/video/x", body.replace(b"x", b"y"), "application/json") is None
    assert verify(auth, t, "POST", "/v1/video/y", body, "application/json") is None
    assert verify(auth, t[:-4] + "AAAA", "POST", "/v1/video/x", body, "application/json") is None


def test_a_body_the_signature_does_not_cover_is_refused(auth):
    # the SDK signs no body without a Content-Type (or with octet-stream): a token for body A would carry B
    a, b = b'{"ops":[{"op":"pulp"}]}', b'{"ops":[{"op":"terror"}]}'
    for ct in (None, "application/octet-stream"):
        t = sdk_token("POST", "http://h/v1/video/x", a, ct)
        assert verify(auth, t, "POST", "/v1/video/x", b, ct or "") is None
        assert verify(auth, t, "POST", "/v1/video/x", a, ct or "") is None
    # an empty body needs no cover
    t = sdk_token("POST", "http://h/v1/jobs/video/1/kill")
    assert verify(auth, t, "POST", "/v1/jobs/video/1/kill") is not None


def test_stale_or_unsigned_date_refused(auth):
    for skew in (-901, 901, 86400 * 30):
        hdr = {"X-Qiniu-Date": _date(NOW + skew)}
        t = sdk_token("GET", "http://h/v1/jobs/video", headers=hdr)
        assert verify(auth, t, "GET", "/v1/jobs/video", headers=hdr) is None, skew
    # a fresh date added to a token that does not sign it: anyone could have written it
    t = sdk_token("GET", "http://h/v1/jobs/video")
    assert verify(auth, t, "GET", "/v1/jobs/video", headers={"X-Qiniu-Date": _date(NOW)}) is None
    hdr = {"X-Qiniu-Date": "yesterday"}
    assert verify(auth, sdk_token("GET", "http://h/v1/jobs/video", headers=hdr), "GET", "/v1/jobs/video",
                  headers=hdr) is None
    strict = Authenticator([KeyPair(AK, SK, "7")], require_date=True, clock=lambda: NOW)
    assert verify(strict, sdk_token("GET", "http://h/v1/jobs/video"), "GET", "/v1/jobs/video") is None


def test_service_refuses_an_uncovered_body_and_a_stale_date(tmp_path: Path, engine, media_dir: Path,
                                                           short_video: Path) -> None:
    import http.client
    import json

    with running_server(tmp_path, engine, media_root=str(media_dir), auth_keys=f"{AK}:{SK}:7") as (srv, api):
        host = f"127.0.0.1:{srv.port}"
        body = json.dumps(video_body(short_video.as_uri(), vframe={"mode": 0, "interval": 1})).encode()

        def post(token_body: bytes, sent: bytes, ct: str | None, headers: dict[str, str] | None = None) -> int:
            mac = qiniu.QiniuMacAuth(AK, SK, disable_qiniu_timestamp_signature=True)
            tok = mac.token_of_request("POST", host, f"http://{host}/v1/video/a", mac.qiniu_headers(headers or {}),
                                       ct, token_body)
            hdrs = {"Authorization": "Qiniu " + tok, **(headers or {})}
            if ct:
                hdrs["Content-Type"] = ct
            c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
            try:
                c.request("POST", "/v1/video/a", body=sent, headers=hdrs)
                return c.getresponse().status
            finally:
                c.close()

        assert post(body, body, "application/json") == 200
        assert post(body, body, None) == 401  # parsed as JSON, yet signed without it
        stale = {"X-Qiniu-Date": _date(time.time() - 3600)}
        assert post(body, body, "application/json", stale) == 401
        fresh = {"X-Qiniu-Date": _date(time.time())}
        assert post(body, body, "application/json", fresh) == 200
