"""Video abstracts over HTTP (CONTRACT §12): ``PUT /v1/videoAbstract``, ``GET ?source=``, ``PUT ?cancel&source=``.

Real components throughout: a real waitress server on loopback with auth on, real SQLite (and PostgreSQL for the
queue rules when ``ARGUS_TEST_PG_URL`` is set), the real engine on short clips built from real footage
(tests/abstract_media.py), a real loopback media server that wants the ``auth`` token, and a real receiver for
the signed notifications. The server runs one task at a time (``jobs=1``), so a long task keeps the worker busy.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import pytest

from argus_core.abstract import run
from argus_http.delivery import webhooks
from argus_http.errors import SourceBusy
from argus_http.queue import abstracts
from argus_http.queue import tables as dbm
from argus_http.queue.protocol import Hooks
from tests import abstract_media as am
from tests.data import DataUnavailable, footage_or_skip
from tests.media_server import MediaServer
from tests.test_abstract_run import SHORT

from conftest import Receiver, running_server
from test_http_auth import Signed
from test_http_openapi import check
from test_http_queue_contract import backend, make_queue  # noqa: F401  (the two-backend fixture)

SECRET = "whsec_" + base64.b64encode(b"abstract-test-secret").decode()
KEYS = "alice-ak:alice-sk:2001,bob-ak:bob-sk:2002"
TOKEN = "token=s3cr3t-tok"  # what the media server wants, given as ``auth``; never to be seen in an answer
PATH = "/v1/videoAbstract"


# -- media -------------------------------------------------------------------------------------------------
def _ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg CLI missing")
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Below the media root: the short real-footage clip (8.2 s: a cut at 3 s, a dissolve over 5.2–6 s) under several
    names (one task per source), a long one (the 31 s mixed set played three times) that keeps the worker
    busy, an audio-only file and a 16×16 video."""
    for name in ("bigbuckbunny", "carphone_pristine", "vtest", "tree", "Megamind"):
        footage_or_skip(name)
    try:
        short, mixed = am.build(SHORT, [], "short"), am.build_mixed()
    except DataUnavailable as exc:
        pytest.skip(str(exc))
    root = tmp_path_factory.mktemp("abstract-media")
    for name in ("short", "again", "low", "high", "doomed", "bobs", "reported"):
        shutil.copyfile(short.path, root / f"{name}.mp4")
    _ffmpeg("-stream_loop", "2", "-i", str(mixed.path), "-c", "copy", str(root / "long.mp4"))
    _ffmpeg("-f", "lavfi", "-i", "sine=d=2", str(root / "audio.m4a"))
    _ffmpeg("-f", "lavfi", "-i", "testsrc=s=16x16:d=2", "-pix_fmt", "yuv420p", str(root / "tiny.mp4"))
    return root


class Api:
    """The two keys' signed clients, the server and the notification receiver."""

    def __init__(self, srv: Any, client: Any, receiver: Receiver | None = None) -> None:
        self.srv, self.client, self.receiver = srv, client, receiver
        self.alice = Signed(client, "alice-ak", "alice-sk")
        self.bob = Signed(client, "bob-ak", "bob-sk")
        self.doc = client.call("GET", "/openapi.json")[2]

    def put(self, body: dict[str, Any], who: Signed | None = None) -> tuple[int, Any]:
        st, _, out = (who or self.alice).call("PUT", PATH, body)
        check(self.doc, PATH, "put", st, out)
        return st, out

    def get(self, source: str, who: Signed | None = None) -> tuple[int, Any]:
        st, _, out = (who or self.alice).call("GET", f"{PATH}?source={quote(source, safe='')}")
        check(self.doc, PATH, "get", st, out)
        return st, out

    def cancel(self, source: str, who: Signed | None = None) -> tuple[int, Any]:
        st, _, out = (who or self.alice).call("PUT", f"{PATH}?cancel&source={quote(source, safe='')}")
        check(self.doc, PATH, "put", st, out)
        return st, out

    def wait(self, source: str, statuses: set[str], timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st, view = self.get(source)
            assert st == 200, view
            if view["status"] in statuses:
                return view
            assert time.monotonic() < deadline, f"{source}: still {view['status']} after {timeout} s"
            time.sleep(0.05)

    def row(self, source: str) -> Any:
        J = self.srv.tables.Job
        return J.get((J.kind == "abstract") & (J.vid == abstracts.source_key(source)))

    def notified(self, task_id: str, timeout: float = 10.0) -> tuple[dict[str, Any], Any]:
        """The task's notification: its body, and the delivery (headers checked by the caller)."""
        assert self.receiver is not None
        got = self.receiver.wait(lambda rs: any(json.loads(r.body)["messageId"].startswith(task_id) for r in rs),
                                 timeout)
        (r,) = [r for r in got if json.loads(r.body)["messageId"].startswith(task_id)]
        return json.loads(r.body), r


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, engine: Any, media: Path) -> Iterator[Api]:
    run.shared_models(engine.models_dir, engine.options, engine.threads)  # loaded once, before any timing
    receiver = Receiver()
    tmp = tmp_path_factory.mktemp("abstract-server")
    try:
        with running_server(tmp, engine, media_root=str(media), auth_keys=KEYS, jobs=1, webhook_secret=SECRET,
                            abstract_notifications={"done": receiver.url("/abstract")}) as (srv, client):
            yield Api(srv, client, receiver)
    finally:
        receiver.stop()


def src(media: Path, name: str) -> str:
    return (media / name).as_uri()


# -- the API -----------------------------------------------------------------------------------------------
def test_finished_abstract_auth_layers_notification_and_reanalysis(api: Api, media: Path) -> None:
    """§12: auth appended to the fetched URL and never echoed; only the requested layers; contentId =
    <taskId>_<level>_<index>; the signed notification carries the GET body; FINISHED re-analysed overwrites."""
    store = MediaServer(media, require=TOKEN)
    with store as base:
        source = f"{base}/short.mp4?v=1"
        st, out = api.put({"source": source, "auth": f"{TOKEN}&sig=x", "notification": "done", "priority": 5,
                           "enableAbstractLayers": [3, 0, 3], "videoType": "news"})
        assert st == 200, out
        assert out["status"] == "PROVISIONING" and out["percent"] == 0 and out["source"] == source
        assert out["videoType"] == "news" and out["notification"] == "done" and "createTime" in out
        st, again = api.put({"source": source, "auth": TOKEN})
        assert st == 409 and again["error"] == SourceBusy.message  # still being analysed
        view = api.wait(source, {"FINISHED", "ERROR"})
        assert view["status"] == "FINISHED", view
        assert f"/short.mp4?v=1&{TOKEN}&sig=x" in store.seen  # appended with '&' as the source has a '?'
        # re-analysis of a FINISHED source: a new task replaces the old one, with what this request asked
        st, out2 = api.put({"source": source, "auth": TOKEN, "enableAbstractLayers": [1], "language": "en"})
        assert st == 200 and out2["status"] == "PROVISIONING"
        view2 = api.wait(source, {"FINISHED", "ERROR"})
    assert view["percent"] == 100 and view["durationInSecond"] == 8
    assert {"startTime", "publishTime", "createTime"} <= set(view) and "error" not in view
    task = view["taskId"]
    assert {i["level"] for i in view["clipResults"]} == {0, 3}
    per_level: dict[int, list[int]] = {}
    for item in view["clipResults"]:
        if "type" in item:  # a §14 technical cue beside the shots
            assert item["contentId"].startswith(f"{task}_3_")
            continue
        m = re.fullmatch(rf"{task}_(\d)_(\d+)", item["contentId"])
        assert m and int(m.group(1)) == item["level"], item["contentId"]
        per_level.setdefault(item["level"], []).append(int(m.group(2)))
    assert all(ix == list(range(len(ix))) for ix in per_level.values()), per_level
    shots = [i for i in view["clipResults"] if i["level"] == 3 and "type" not in i]
    assert [s["transition"] for s in shots] == ["start", "cut", "dissolve"]
    body, delivery = api.notified(task)
    assert webhooks.verify(SECRET, delivery.headers, delivery.body)
    assert body["messageId"] == delivery.headers["webhook-id"]
    assert json.loads(body["messageBody"]) == view
    assert view2["status"] == "FINISHED" and view2["taskId"] != task and view2["language"] == "en"
    assert {i["level"] for i in view2["clipResults"]} == {1}
    assert all(i["contentId"].startswith(view2["taskId"] + "_1_") for i in view2["clipResults"])
    J = api.srv.tables.Job
    assert J.select().where(J.vid == abstracts.source_key(source)).count() == 1  # the old task is gone
    for text in (out, again, view, view2, out2, delivery.body.decode()):
        assert "s3cr3t" not in (text if isinstance(text, str) else json.dumps(text))


def test_busy_worker_priority_cancel_and_percent(api: Api, media: Path) -> None:
    """§12: one worker busy with a long task; 409 for a source PROCESSING or PROVISIONING; cancel a queued task;
    percent polled is integral and never decreases; cancel the PROCESSING one and its decoding stops within 2 s;
    then the higher priority runs first although submitted last."""
    long, low, high, doomed = (src(media, n) for n in ("long.mp4", "low.mp4", "high.mp4", "doomed.mp4"))
    assert api.put({"source": long, "notification": "done"})[0] == 200
    api.wait(long, {"PROCESSING"})
    assert api.put({"source": long})[0] == 409
    assert api.put({"source": low, "priority": 1})[0] == 200
    assert api.put({"source": high, "priority": 90})[0] == 200
    assert api.put({"source": low})[0] == 409  # PROVISIONING is being analysed too
    assert api.put({"source": doomed, "notification": "done"})[0] == 200
    assert api.cancel(doomed) == (200, {})
    st, view = api.get(doomed)
    assert view["status"] == "CANCELLED" and "publishTime" in view and "startTime" not in view
    body, _ = api.notified(view["taskId"])
    assert json.loads(body["messageBody"])["status"] == "CANCELLED"
    seen: list[int] = []
    deadline = time.monotonic() + 20
    while len(set(seen)) < 4 and time.monotonic() < deadline:
        view = api.get(long)[1]
        assert view["status"] == "PROCESSING", view
        seen.append(view["percent"])
        time.sleep(0.1)
    assert all(isinstance(p, int) for p in seen) and seen == sorted(seen) and len(set(seen)) >= 4, seen
    assert abs(view["durationInSecond"] - 3 * am.build_mixed().duration) <= 1 and "startTime" in view
    running = api.row(long).job_id
    t0 = time.monotonic()
    assert api.cancel(long) == (200, {})
    while running in api.srv.runner.running:
        assert time.monotonic() - t0 < 2.0, "decoding still running 2 s after the cancel"
        time.sleep(0.02)
    view = api.get(long)[1]
    assert view["status"] == "CANCELLED" and view["percent"] >= seen[-1] and view["clipResults"] == []
    assert api.cancel(long)[0] == 400  # ended: nothing to cancel
    assert api.wait(high, {"FINISHED"})["status"] == "FINISHED"
    assert api.wait(low, {"FINISHED"})["status"] == "FINISHED"
    assert api.row(high).started_at < api.row(low).started_at
    assert api.row(doomed).started_at is None  # cancelled while queued: never ran
    metrics = api.client.call("GET", "/metrics")[2]
    assert re.search(r'^argus_video_abstracts\{status="CANCELLED"\} [1-9]', metrics, re.M), metrics


def test_invalid_media_and_time_out(api: Api, media: Path, tmp_path: Path, engine: Any) -> None:
    """§12 errors: an audio-only file and a 16×16 video end in ERROR InvalidMedia with the seed's messages (an
    ERROR source is analysed again on request); a tiny configured limit ends in TimeOut."""
    audio, tiny = src(media, "audio.m4a"), src(media, "tiny.mp4")
    assert api.put({"source": audio, "notification": "done"})[0] == 200
    assert api.put({"source": tiny})[0] == 200
    view = api.wait(audio, {"FINISHED", "ERROR"})
    assert view["error"] == {"code": "InvalidMedia", "message": run.NO_VIDEO} and view["clipResults"] == []
    body, _ = api.notified(view["taskId"])
    assert json.loads(body["messageBody"])["error"]["code"] == "InvalidMedia"
    assert api.wait(tiny, {"FINISHED", "ERROR"})["error"] == {"code": "InvalidMedia", "message": run.LIMIT_EXCEEDED}
    assert api.put({"source": audio})[0] == 200  # ERROR: analysed again
    api.wait(audio, {"ERROR"})
    with running_server(tmp_path, engine, media_root=str(media), abstract_time_limit=0.001) as (srv, client):
        source = src(media, "short.mp4")
        st, _, out = client.call("PUT", PATH, {"source": source})
        assert st == 200, out
        deadline = time.monotonic() + 30
        while (view := client.call("GET", f"{PATH}?source={quote(source, safe='')}")[2])["status"] != "ERROR":
            assert time.monotonic() < deadline and view["status"] != "FINISHED", view
            time.sleep(0.05)
    assert view["error"] == {"code": "TimeOut", "message": run.TimeOut.message}


def test_scoped_to_the_key(api: Api, media: Path) -> None:
    """§11/§12: another key's source is not found (GET, cancel) and does not block its own task; no token: 401."""
    source = src(media, "bobs.mp4")
    assert api.put({"source": source, "enableAbstractLayers": [0]})[0] == 200
    assert api.get(source, api.bob) == (404, {"error": "video abstract not found"})
    assert api.cancel(source, api.bob)[0] == 404
    assert api.get(source)[0] == 200
    assert api.client.call("GET", f"{PATH}?source={quote(source, safe='')}")[0] == 401
    assert api.wait(source, {"FINISHED"})["clipResults"][0]["level"] == 0


def _report_lanes(who: Signed, job_id: str) -> list[str]:
    st, _, page = who.call("GET", f"/v1/jobs/video/{job_id}/report")
    assert st == 200 and isinstance(page, str), page
    m = re.search(r'<script id="argus-data" type="application/json">(.*?)</script>', page, re.S)
    assert m
    return [o["name"] for o in json.loads(m.group(1))["ops"]]


def _job_done(api: Api, who: Signed, source: str) -> str:
    body = {"data": {"uri": source}, "params": {"async": True, "vframe": {"mode": 0, "interval": 4}},
            "ops": [{"op": "pulp"}]}
    st, _, out = who.call("POST", "/v1/video/report-check", body)
    assert st == 200, out
    deadline = time.monotonic() + 60
    while who.call("GET", f"/v1/jobs/video/{out['job']}")[2]["status"] not in dbm.FINAL:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return out["job"]


def test_job_report_shows_the_callers_abstract_of_the_same_source(api: Api, media: Path) -> None:
    """Issue 13: the timeline report of a video job shows the shot/scene/clip tree when the caller has a finished
    abstract of the same source; another key's abstract is not theirs to see."""
    source = src(media, "reported.mp4")
    assert api.put({"source": source, "enableAbstractLayers": [0, 2, 3]})[0] == 200
    assert api.wait(source, {"FINISHED"})["status"] == "FINISHED"
    lanes = _report_lanes(api.alice, _job_done(api, api.alice, source))
    assert lanes[:3] == ["programme", "scenes", "shots"] and lanes[-1] == "pulp"
    assert _report_lanes(api.bob, _job_done(api, api.bob, source)) == ["pulp"]


@pytest.mark.parametrize("body, detail", [
    ({"source": "x" * 1025}, "length <= 1024"),
    ({"source": "ftp://example.com/a.mp4"}, "http(s) URL or a file:// URI"),
    ({"source": "rtmp://example.com/live"}, "http(s) URL or a file:// URI"),
    ({"source": "file:///etc/passwd"}, None),                          # outside the media root
    ({"source": "http://10.0.0.1/a.mp4"}, None),                       # SSRF guard: a private address
    ({"source": "SHORT", "priority": 101}, "<= 100"),
    ({"source": "SHORT", "priority": True}, "Expected `int`"),
    ({"source": "SHORT", "enableAbstractLayers": [4]}, "<= 3"),
    ({"source": "SHORT", "enableAbstractLayers": []}, "length >= 1"),
    ({"source": "SHORT", "videoType": "movie"}, "videoType"),
    ({"source": "SHORT", "language": "fr"}, "language"),
    ({"source": "SHORT", "notification": "nope"}, "unknown notification 'nope'"),
    ({"source": "SHORT", "auth": "token=1"}, "auth is for http(s) sources only"),
    ({}, "source"),
])
def test_bad_requests_are_400_with_a_reason(api: Api, media: Path, body: dict, detail: str | None) -> None:
    """§12 validation through the one error map: 400 ``invalid parameters``, the reason as ``detail``."""
    if body.get("source") == "SHORT":
        body = {**body, "source": src(media, "short.mp4")}
    st, out = api.put(body)
    assert st == 400 and out["error"] == "invalid parameters", out
    if detail is not None:
        assert detail in out.get("detail", ""), out
    assert api.get(src(media, "never.mp4")) == (404, {"error": "video abstract not found"})
    assert api.alice.call("GET", PATH)[0] == 400  # no source


def test_remote_worker_runs_abstracts_through_the_queue_api(tmp_path: Path, media: Path, engine: Any) -> None:
    """``argus worker --queue-url``: the runner on :class:`RemoteQueue` (its executor and backend, in this
    process) claims abstract tasks from an API-only server, reports percent over the queue API, stops within 2 s
    of a cancel seen through its lease checks, and finishes the next task."""
    from argus_http.jobs.runner import Runner
    from argus_http.net.ssrf import Guard
    from argus_http.queue.remote import RemoteQueue

    keys = f"{KEYS},worker-ak:worker-sk:0:queue"
    with running_server(tmp_path, None, media_root=str(media), auth_keys=keys) as (srv, client):
        alice = Signed(client, "alice-ak", "alice-sk")
        worker = Runner(engine, RemoteQueue(client.base, "worker-ak", "worker-sk"), srv.s, Guard(srv.s.ssrf_allow),
                        kinds=("abstract",)).start()
        api = Api(srv, client)
        try:
            long, short = src(media, "long.mp4"), src(media, "again.mp4")
            assert api.put({"source": long})[0] == 200
            deadline = time.monotonic() + 20
            while (view := api.get(long)[1])["percent"] < 2:
                assert time.monotonic() < deadline and view["status"] in ("PROVISIONING", "PROCESSING"), view
                time.sleep(0.05)
            assert view["status"] == "PROCESSING" and "durationInSecond" in view
            t0 = time.monotonic()
            assert api.cancel(long) == (200, {})
            while not worker.idle():
                assert time.monotonic() - t0 < 2.0, "the remote worker still decodes 2 s after the cancel"
                time.sleep(0.02)
            assert api.put({"source": short, "enableAbstractLayers": [2]})[0] == 200
            done = api.wait(short, {"FINISHED", "ERROR"})
            assert done["status"] == "FINISHED" and {i["level"] for i in done["clipResults"]} == {2}
            assert alice.call("GET", f"{PATH}?source={quote(long, safe='')}")[2]["status"] == "CANCELLED"
        finally:
            worker.stop()


# -- the queue's rules, on both backends -------------------------------------------------------------------
REQ = {"source": "http://127.0.0.1:9/v.mp4", "videoType": "general", "enableAbstractLayers": [0, 1, 2],
       "language": "zh", "notification": "done"}


def _submit(q: Any, uid: str = "u", source: str = REQ["source"], priority: int = 0) -> str:
    return q.submit(uid, {**REQ, "source": source}, vid=abstracts.source_key(source), kind="abstract",
                    priority=priority, hooks=Hooks(final="http://127.0.0.1:9/n"), exclusive=True)


def test_queue_one_unfinished_task_per_source(backend: str) -> None:  # noqa: F811
    """§12 on the job table: 409 while unfinished (also when a submit skips the check: the database refuses),
    an ended task is replaced with its result; per uid; priority then creation order."""
    import peewee as pw

    q = make_queue(backend)
    first = _submit(q)
    with pytest.raises(SourceBusy):
        _submit(q)
    with pytest.raises(pw.IntegrityError):  # what a racing second submit meets on PostgreSQL
        q.submit("u", REQ, vid=abstracts.source_key(REQ["source"]), kind="abstract")
    other_uid = _submit(q, uid="v")
    low = _submit(q, source="http://127.0.0.1:9/low.mp4", priority=1)
    high = _submit(q, source="http://127.0.0.1:9/high.mp4", priority=70)
    leases = q.claim("w", 10, kinds=("abstract",))
    assert [l.job_id for l in leases] == [high, low, first, other_uid]
    lease = leases[2]
    assert q.finish(first, lease.token, result={"durationInSecond": 1, "clipResults": [{"contentId": "x"}]})
    again = _submit(q)
    assert again != first and q.latest("u", "abstract", abstracts.source_key(REQ["source"])).job_id == again
    J, R = q.t.Job, q.t.JobResult
    assert not J.select().where(J.job_id == first).exists() and not R.select().where(R.job_id == first).exists()


def test_queue_percent_never_decreases_and_notifications_ride_the_state_change(backend: str) -> None:  # noqa: F811
    """§12: the stored percent only grows, across a retry too; startTime is the first claim; the notification
    row is written by the transaction that ends the task (cancel, finish, attempts exhausted)."""
    q = make_queue(backend, retry_delay=0.0, lease_seconds=0.2, max_attempts=2)
    job = _submit(q)
    (lease,) = q.claim("w", 1, kinds=("abstract",))
    assert q.record_progress(job, lease.token, 40, 9000) and q.record_progress(job, lease.token, 10)
    assert not q.record_progress(job, "stale", 90)
    rec = q.latest("u", "abstract", abstracts.source_key(REQ["source"]))
    assert (rec.percent, rec.duration_ms) == (40, 9000)
    assert q.finish(job, lease.token, error="internal error", retryable=True)  # RESCHEDULED: PROVISIONING
    view = abstracts.view(q.latest("u", "abstract", abstracts.source_key(REQ["source"])))
    assert view["status"] == "PROVISIONING" and view["percent"] == 40 and "startTime" not in view
    (lease2,) = q.claim("w", 1, kinds=("abstract",))
    assert q.record_progress(job, lease2.token, 20)
    rec2 = q.latest("u", "abstract", abstracts.source_key(REQ["source"]))
    assert rec2.percent == 40 and rec2.started_at == rec.started_at
    time.sleep(0.3)
    assert q.sweep() == 1  # the lease expired on the last attempt: ERROR InternalError, notified
    O = q.t.Outbox
    (row,) = O.select().where(O.job_id == job)
    msg = json.loads(row.body)
    assert row.msg_id == msg["messageId"] == abstracts.message_id(job)
    sent = json.loads(msg["messageBody"])
    assert sent["status"] == "ERROR" and sent["error"]["code"] == "InternalError" and sent["percent"] == 40
    cancelled = _submit(q, source="http://127.0.0.1:9/c.mp4")
    q.cancel(cancelled)
    (row,) = O.select().where(O.job_id == cancelled)
    assert json.loads(json.loads(row.body)["messageBody"])["status"] == "CANCELLED"
    assert q.counts(kind=dbm.ABSTRACT)[dbm.FAILED] == 1



def test_queue_a_submit_that_lost_the_race_is_409(backend: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """§12: a submit whose check ran before another's insert committed (PostgreSQL: two transactions at once)
    meets the partial unique index, and the caller gets the 409, not a 500."""
    q = make_queue(backend)
    first = _submit(q)
    monkeypatch.setattr(q, "_replace", lambda uid, kind, vid: None)  # the check saw no task yet
    with pytest.raises(SourceBusy):
        _submit(q)
    assert q.latest("u", "abstract", abstracts.source_key(REQ["source"])).job_id == first


def test_queue_progress_columns_are_added_to_an_old_database(backend: str) -> None:  # noqa: F811
    """A database written before abstracts gets ``percent``, ``duration_ms`` and ``started_at`` in place."""
    from playhouse.migrate import SchemaMigrator, migrate

    q = make_queue(backend)
    table = q.t.Job._meta.table_name
    migrator = SchemaMigrator.from_database(q.t.db)
    migrate(*(migrator.drop_column(table, c) for c in ("percent", "duration_ms", "started_at")))
    q.t.create()  # a newer version starting on the old database
    assert {"percent", "duration_ms", "started_at"} <= {c.name for c in q.t.db.get_columns(table)}
    job = _submit(q)
    (lease,) = q.claim("w", 1, kinds=("abstract",))
    assert q.record_progress(job, lease.token, 12, 3000)
    rec = q.latest("u", "abstract", abstracts.source_key(REQ["source"]))
    assert (rec.percent, rec.duration_ms) == (12, 3000) and rec.started_at is not None


def test_keyframe_jpegs_in_the_frame_store(media: Path, tmp_path: Path, engine: Any) -> None:
    """§12 extras: with ``abstract_keyframes`` on, every shot and scene carries ``keyframeURI``, a JPEG in the
    frame store (the ``params.save`` store) of the frame shown at its ``keyframeInMS`` — upright, full size."""
    import av
    import numpy as np

    from argus_core.media.sampler import FrameGrabber
    from argus_core.media.source import source_for

    store = tmp_path / "frames"
    with running_server(tmp_path, engine, media_root=str(media), abstract_keyframes=True,
                        save_store=str(store)) as (srv, client):
        source = src(media, "short.mp4")
        st, _, out = client.call("PUT", PATH, {"source": source, "enableAbstractLayers": [2, 3]})
        assert st == 200, out
        deadline = time.monotonic() + 60
        while (view := client.call("GET", f"{PATH}?source={quote(source, safe='')}")[2])["status"] != "FINISHED":
            assert time.monotonic() < deadline and view["status"] != "ERROR", view
            time.sleep(0.1)
    items = [i for i in view["clipResults"] if "keyframeInMS" in i]
    assert {i["level"] for i in items} == {2, 3} and len(items) >= 3
    grab = FrameGrabber(source_for(str(media / "short.mp4")))
    try:
        for item in items:
            uri = item["keyframeURI"]
            path = Path(uri.removeprefix("file://"))
            assert uri.startswith("file://") and path.is_relative_to(store.resolve()), uri
            with av.open(str(path)) as c:
                jpeg = next(c.decode(video=0)).to_ndarray(format="rgb24").astype(np.int16)
            shown = grab.frame_at(int(item["keyframeInMS"])).to_ndarray(format="rgb24").astype(np.int16)
            assert jpeg.shape == shown.shape
            assert np.abs(jpeg - shown).mean() < 6, item  # the same frame, up to JPEG loss
    finally:
        grab.close()
    shots = sorted((i for i in items if i["level"] == 3), key=lambda i: i["startTimeInMS"])
    a, b = (Path(s["keyframeURI"].removeprefix("file://")).read_bytes() for s in (shots[0], shots[-1]))
    assert a != b  # each shot its own frame
