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
