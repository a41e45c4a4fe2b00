"""CONTRACT §14 over HTTP, on the real Engine: the verdict in the sync response, callbacks and job record,
and the report route."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

from argus_core import verdict

from conftest import Receiver, running_server, video_body

PARAMS = {"vframe": {"mode": 0, "interval": 1}}


def _strip(result: dict) -> dict:
    out = copy.deepcopy(result)
    for res in out.values():
        res.pop("suggestion", None)
        for s in res["segments"]:
            s.pop("suggestion", None)
            for c in s["cuts"]:
                c.pop("suggestion", None)
    return out


def _ops(policy: dict | None, **extra) -> list[dict]:
    params = {"other": {"suggestion": policy}} if policy is not None else {}
    return [{"op": "pulp", "params": params, **extra}]


def test_sync_carries_suggestions_and_the_header(tmp_path: Path, engine, media_dir: Path, short_video: Path) -> None:
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (_, api):
        st, hdr, plain = api.call("POST", "/v1/video/v1", video_body(short_video.as_uri(), ops=_ops(None), **PARAMS))
        st2, hdr2, forced = api.call("POST", "/v1/video/v1", video_body(
            short_video.as_uri(), ops=_ops({"review": {"*": 0.0}, "review_flag": False}), **PARAMS))
        st3, _, bad = api.call("POST", "/v1/video/v1", video_body(
            short_video.as_uri(), ops=_ops({"block": {"0": 7}}), **PARAMS))
        st4, _, bad_async = api.call("POST", "/v1/video/v1", video_body(
            short_video.as_uri(), ops=_ops({"blok": {}}), **{"async": True}, **PARAMS))
    assert st == st2 == 200
    assert set(plain) == {"pulp"}  # the body stays {op: ...}
    # the verdict follows the built-in policy from the real model's scores...
    expected = verdict.annotate(_strip(plain), verdict.policies_of({"ops": _ops(None)}))
    assert hdr["x-argus-suggestion"] == expected == plain["pulp"]["suggestion"]
    # ...and a request policy: every label reviewed
    assert hdr2["x-argus-suggestion"] == "review" == forced["pulp"]["suggestion"]
    assert all(s["suggestion"] == "review" and all(c["suggestion"] == "review" for c in s["cuts"])
               for s in forced["pulp"]["segments"])
    assert _strip(forced) == _strip(plain)  # seed fields untouched
    assert (st3, bad) == (400, {"error": "invalid parameters"})
    assert (st4, bad_async) == (400, {"error": "invalid parameters"})


def test_async_callbacks_job_and_report(tmp_path: Path, engine, media_dir: Path, short_video: Path,
                                        receiver: Receiver) -> None:
    policy = {"block": {"*": 0.0}}  # every kept label blocks
    ops = _ops(policy, hookURL=receiver.url("/op"), hookURL_segment=receiver.url("/seg"))
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (_, api):
        sync = api.call("POST", "/v1/video/c1", video_body(short_video.as_uri(), ops=_ops(policy), **PARAMS))[2]
        body = video_body(short_video.as_uri(), ops=ops, hookURL=receiver.url("/final"), **{"async": True}, **PARAMS)
        job_id = api.call("POST", "/v1/video/c1", body)[2]["job"]
        # the op's and the final callback are separate outbox deliveries: either may arrive first
        received = receiver.wait(lambda rs: {"/final", "/op"} <= {r.path for r in rs}, timeout=30)
        job = api.wait_status(job_id, {"FINISHED"})
        st, hdr, page = api.call("GET", f"/v1/jobs/video/{job_id}/report")
        st2, _, again = api.call("GET", f"/v1/jobs/video/{job_id}/report")
        missing = api.call("GET", "/v1/jobs/video/nope/report")
    assert job["result"] == sync and job["suggestion"] == "block"
    (final,) = [r.json() for r in received if r.path == "/final"]
    assert final == {"id": "c1", "result": sync, "suggestion": "block"}
    segs = [r.json()["result"] for r in received if r.path == "/seg"]
    assert segs and all(s["suggestion"] == "block" and {c["suggestion"] for c in s["cuts"]} == {"block"}
                        for s in segs)
    (op_cb,) = [r.json() for r in received if r.path == "/op"]
    assert op_cb["result"]["suggestion"] == "block"
    # the report: HTML, self-contained, the job's data, a thumbnail per cut grabbed from the media-root file
    assert st == st2 == 200 and hdr["content-type"].startswith("text/html")
    assert again == page  # served from the cache the second time
    data = json.loads(re.search(r'<script id="argus-data" type="application/json">(.*?)</script>', page, re.S)[1])
    assert data["overall"] == "block" and data["duration"] == 4000 and data["id"] == job_id
    offsets = {c["offset"] for s in sync["pulp"]["segments"] for c in s["cuts"]}
    assert set(map(int, data["thumbs"])) == offsets
    assert not re.search(r"https?://", page)
    assert missing[0] == 404 and missing[2] == {"error": "job not found"}
