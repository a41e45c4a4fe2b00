"""Issue 10 through the service: bad op parameters are 400 with a detail at submit (sync and async), and
/healthz answers 503 once the engine cannot serve."""

from __future__ import annotations

from pathlib import Path

from conftest import running_server, video_body


def uri(p: Path) -> str:
    return p.as_uri()


BAD_OTHER = [("ocr", {"min_score": "abc"}), ("ocr", {"keywords": 5}), ("pulp", {"cross_check": "maybe"})]


def test_bad_op_params_are_400_with_detail_sync_and_async(tmp_path: Path, engine, media_dir: Path,
                                                          short_video: Path) -> None:
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (_, api):
        for op, other in BAD_OTHER:
            for extra in ({}, {"async": True}):
                body = video_body(uri(short_video), vframe={"mode": 0, "interval": 1},
                                  ops=[{"op": op, "params": {"other": other}}], **extra)
                st, _, out = api.call("POST", "/v1/video/v1", body)
                assert st == 400 and out["error"] == "invalid parameters", out
                assert f"params.other.{next(iter(other))}" in out["detail"]
        # a good job next to them is untouched, and the engine still serves
        st, _, out = api.call("POST", "/v1/video/v2", video_body(uri(short_video), vframe={"mode": 0, "interval": 1},
                                                                  ops=[{"op": "ocr", "params": {"other": {
                                                                      "min_score": 0.6, "keywords": ["x"]}}}]))
        assert st == 200 and "ocr" in out, out
        st, _, h = api.call("GET", "/healthz")
        assert st == 200 and h["engine_health"]["ok"] is True


def test_healthz_fails_when_the_engine_cannot_serve(tmp_path: Path) -> None:
    from argus_core import Engine
    from argus_core.pipeline.coordinator import Cancel

    e = Engine(decoders=1, workers=1, ops=["pulp"])
    try:
        with running_server(tmp_path, e) as (_, api):
            st, _, h = api.call("GET", "/healthz")
            assert st == 200 and h["status"] == "ok"

            def broken_schedule() -> None:  # fault injection: the coordinator loop ends
                raise RuntimeError("injected coordinator failure")

            e._coord.schedule = broken_schedule
            e._coord.post(Cancel(0))
            e._thread.join(10)
            st, _, h = api.call("GET", "/healthz")
            assert st == 503 and h["status"] == "unavailable" and h["engine_health"]["coordinator"] is False
    finally:
        e.close()


# -- bad wire input: 400 (or waitress's own limits) as JSON, never a 500 --------------------------------------
def _raw(port: int, data: bytes, read_timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    import socket

    with socket.create_connection(("127.0.0.1", port), 10) as s:
        s.settimeout(read_timeout)
        s.sendall(data)
        out = b""
        while b"\r\n\r\n" not in out:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
        head, _, rest = out.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
        n = int(headers.get("content-length", 0))
        while len(rest) < n:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
        return int(lines[0].split()[1]), headers, rest


def test_wire_limits_and_bad_json_answer_json(tmp_path: Path) -> None:
    import json

    with running_server(tmp_path, None) as (srv, api):
        deep = b'{"data":{"uri":"x"},"ops":[{"op":"pulp"}],"x":' + b"[" * 5000 + b"]" * 5000 + b"}"
        st, _, out = api.call("POST", "/v1/video/v", raw=deep, headers={"Content-Type": "application/json"})
        assert st == 400 and out["error"] == "invalid parameters", out
        for index in ("abc", None, -1, 1.5, True, 10**30):
            st, _, out = api.call("POST", "/v1/job/x/events?lease=t",
                                  {"events": [{"type": "segment", "op": "pulp", "index": index, "result": {}}]})
            assert st == 400 and "index" in out["detail"], (index, out)
        st, _, out = api.call("POST", "/v1/job/x/events?lease=t", {"events": [{"type": "op", "op": 5}]})
        assert st == 400, out
        # a 300 MB Content-Length is refused when the headers arrive: no body byte is sent at all
        st, hdrs, body = _raw(srv.port, b"POST /v1/video/v HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                        b"Content-Length: 300000000\r\n\r\n")
        assert st == 413 and hdrs["content-type"].startswith("application/json")
        assert json.loads(body) == {"error": "request body too large"}
        # headers over waitress's limit: 431, as JSON too
        st, hdrs, body = _raw(srv.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 300_000 + b"\r\n\r\n")
        assert st == 431 and json.loads(body) == {"error": "request headers too large"}
