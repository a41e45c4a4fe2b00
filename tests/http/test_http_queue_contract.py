"""Queue contract (CONTRACT §7–§8): the same tests on SQLite (always) and PostgreSQL (ARGUS_TEST_PG_URL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from argus_http.delivery import callbacks as cb
from argus_http.queue import tables as dbm
from argus_http.delivery import outbox
from argus_http.config import load_settings
from argus_http.queue.tables import Tables, open_database
from argus_http.errors import CannotCancel, JobNotFound
from argus_http.queue.database import LEASE_EXHAUSTED, JobQueue
from argus_core.errors import InvalidRequest

from conftest import PG_URL, REPO

BACKENDS = ["sqlite", pytest.param("postgres", marks=[
    pytest.mark.postgres, pytest.mark.skipif(not PG_URL, reason="ARGUS_TEST_PG_URL not set")])]


def _url(kind: str, tmp: Path) -> str:
    return f"sqlite:///{tmp / 'queue.db'}" if kind == "sqlite" else PG_URL


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = _url(request.param, tmp_path)
    if request.param == "postgres":
        t = Tables(open_database(url))
        t.db.drop_tables(t.models, safe=True)
        t.close()
    return url


def make_queue(url: str, **overrides) -> JobQueue:
    settings = load_settings(env={}, overrides={"database_url": url, "data_dir": "/tmp/unused", **overrides})
    t = Tables(open_database(url))
    t.create()
    return JobQueue(t, settings)


def REQ(hook: str | None = "http://127.0.0.1:9/final", **extra) -> dict:
    req = {"data": {"uri": "http://127.0.0.1:9/v.mp4"}, "params": {"async": True},
           "ops": [{"op": "pulp", "hookURL": "http://127.0.0.1:9/op", "hookURL_segment": "http://127.0.0.1:9/seg"}]}
    if hook:
        req["params"]["hookURL"] = hook
    req.update(extra)
    return req


def outbox_rows(q: JobQueue, job_id: str) -> list:
    O = q.t.Outbox
    return list(O.select().where(O.job_id == job_id).order_by(O.seq))


def test_submit_claim_finish(backend: str) -> None:
    """§7: WAITING → DOING → FINISHED; the result is stored and the final callback queued."""
    q = make_queue(backend)
    job_id = q.submit("u1", REQ(), vid="v1")
    assert q.get(job_id)["status"] == "WAITING"
    leases = q.claim("w1", 5)
    assert [l.job_id for l in leases] == [job_id]
    assert leases[0].attempts == 1 and leases[0].vid == "v1" and leases[0].request == REQ()
    assert q.get(job_id)["status"] == "DOING"
    assert q.claim("w2", 5) == []  # a leased job is never handed out twice
    result = {"pulp": {"labels": [], "segments": []}}
    assert q.finish(job_id, leases[0].token, result=result)
    job = q.get(job_id)
    assert job["status"] == "FINISHED" and job["result"] == result and "error" not in job
    rows = outbox_rows(q, job_id)
    assert [(r.msg_id, r.url) for r in rows] == [(cb.final_msg_id(job_id), "http://127.0.0.1:9/final")]
    assert json.loads(rows[0].body) == {"id": "v1", "result": result}


def test_claim_is_oldest_first_and_bounded(backend: str) -> None:
    q = make_queue(backend)
    ids = [q.submit("u", REQ()) for _ in range(5)]
    got = q.claim("w", 3)
    assert [l.job_id for l in got] == ids[:3]
    assert [l.job_id for l in q.claim("w", 10)] == ids[3:]


def test_claim_is_highest_priority_first_then_oldest(backend: str) -> None:
    """CONTRACT §12: priority 0–100, higher first, equal priority in creation order."""
    q = make_queue(backend)
    low = q.submit("u", REQ())
    high_a = q.submit("u", REQ(), kind="abstract", priority=80)
    mid = q.submit("u", REQ(), priority=10)
    high_b = q.submit("u", REQ(), kind="abstract", priority=80)
    assert [l.job_id for l in q.claim("w", 1, kinds=("video", "abstract"))] == [high_a]
    assert [l.job_id for l in q.claim("w", 10, kinds=("video", "abstract"))] == [high_b, mid, low]


def _statements(q: JobQueue) -> list[str]:
    """Every SQL statement the queue's database runs from now on (BEGIN/COMMIT included), in order."""
    seen: list[str] = []
    db = q.t.db
    run, begin, commit = db.execute_sql, db.begin, db.commit
    db.execute_sql = lambda sql, params=None: (seen.append(sql), run(sql, params))[1]  # type: ignore[method-assign]
    db.begin = lambda *a, **k: (seen.append("BEGIN"), begin(*a, **k))[1]  # type: ignore[method-assign]
    db.commit = lambda: (seen.append("COMMIT"), commit())[1]  # type: ignore[method-assign]
    return seen


def test_a_claim_is_one_read_and_one_write_statement(backend: str) -> None:
    """Issue 10: one pre-check read (expired leases, runnable jobs), then one UPDATE … RETURNING for the
    whole batch; an empty queue takes no write transaction at all."""
    q = make_queue(backend)
    ids = [q.submit("u", REQ()) for _ in range(4)]
    seen = _statements(q)
    got = q.claim("w", 3)
    assert [l.job_id for l in got] == ids[:3]
    writes = [s for s in seen if s.lstrip().upper().startswith(("UPDATE", "WITH", "INSERT", "DELETE"))]
    assert len(writes) == 1 and "RETURNING" in writes[0]
    assert [s for s in seen if s not in writes and s not in ("BEGIN", "COMMIT")] == [seen[0]]  # the one read
    q.claim("w", 5)
    seen.clear()
    assert q.claim("w", 5) == []
    assert len(seen) == 1 and seen[0].lstrip().upper().startswith("SELECT")


def test_a_batch_gives_each_lease_its_own_token(backend: str) -> None:
    """Every lease of one claim has its own token, good for its own job only; a re-claim gets a new one."""
    q = make_queue(backend, retry_delay=0.0)
    ids = [q.submit("u", REQ()) for _ in range(3)]
    got = q.claim("w", 3)
    assert len({l.token for l in got}) == 3
    a, b, _ = got
    assert not q.touch(a.job_id, b.token) and not q.finish(a.job_id, b.token, result={})
    assert all(q.touch(l.job_id, l.token) for l in got)
    assert q.finish(a.job_id, a.token, error="decoder crashed", retryable=True)
    (again,) = q.claim("w", 3)
    assert again.job_id == ids[0] and again.token not in {l.token for l in got} and again.attempts == 2
    assert not q.touch(a.job_id, a.token) and q.touch(a.job_id, again.token)


def test_claim_without_returning_keeps_the_contract(backend: str) -> None:
    """A database without ``UPDATE … RETURNING`` (SQLite < 3.35) claims with a SELECT and one UPDATE:
    the same order, tokens and attempts."""
    q = make_queue(backend)
    q.t.caps = msgspec.structs.replace(q.t.caps, returning=False)
    low = q.submit("u", REQ())
    high = q.submit("u", REQ(), priority=5)
    got = q.claim("w", 5)
    assert [l.job_id for l in got] == [high, low] and [l.attempts for l in got] == [1, 1]
    assert len({l.token for l in got}) == 2 and all(q.touch(l.job_id, l.token) for l in got)
    assert q.claim("w", 5) == []


def test_priority_column_is_added_to_an_old_database(backend: str) -> None:
    q = make_queue(backend)
    J = q.t.Job
    old = q.submit("u", REQ())
    from playhouse.migrate import SchemaMigrator, migrate

    migrator = SchemaMigrator.from_database(q.t.db)
    migrate(migrator.drop_index(J._meta.table_name, "argus_job_status_priority_seq"),
            migrator.drop_column(J._meta.table_name, "priority"))
    q.t.create()  # a newer version starting on the old database
    assert "priority" in {c.name for c in q.t.db.get_columns(J._meta.table_name)}
    urgent = q.submit("u", REQ(), priority=5)
    assert [l.job_id for l in q.claim("w", 5)] == [urgent, old]


def test_touch_and_lease_tokens(backend: str) -> None:
    """§8: touch extends only the caller's lease; a stale token cannot touch or finish (lease lost)."""
    q = make_queue(backend, lease_seconds=0.5)
    job_id = q.submit("u", REQ())
    (lease,) = q.claim("w", 1)
    assert q.touch(job_id, lease.token, lease_seconds=60)
    assert not q.touch(job_id, "not-the-token")
    assert not q.finish(job_id, "not-the-token", result={})
    assert q.sweep() == 0  # touched: not expired
    assert q.lost([(job_id, lease.token), ("nope", "x")]) == {"nope"}


def test_expired_lease_rescheduled_then_reclaimed(backend: str) -> None:
    """§7/§8: an expired lease → RESCHEDULED; the next claim gets a new token; the old one is dead."""
    q = make_queue(backend, lease_seconds=0.2)
    job_id = q.submit("u", REQ())
    (first,) = q.claim("w1", 1)
    time.sleep(0.3)
    assert q.sweep() == 1
    assert q.get(job_id)["status"] == "RESCHEDULED"
    (second,) = q.claim("w2", 1)
    assert second.token != first.token and second.attempts == 2
    assert not q.touch(job_id, first.token)
    assert not q.record_segment(job_id, first.token, "pulp", 0, {})
    assert not q.finish(job_id, first.token, result={})
    assert q.finish(job_id, second.token, result={"pulp": {"labels": [], "segments": []}})
    assert q.get(job_id)["status"] == "FINISHED"


def test_attempts_exhausted_fails_with_final_callback(backend: str) -> None:
    """§7: after max_attempts lost leases the job is FAILED and its final callback carries the error."""
    q = make_queue(backend, lease_seconds=0.1, max_attempts=2)
    job_id = q.submit("u", REQ(), vid="v9")
    for _ in range(2):
        assert len(q.claim("w", 1)) == 1
        time.sleep(0.15)
        q.sweep()
    job = q.get(job_id)
    assert job["status"] == "FAILED" and job["error"] == LEASE_EXHAUSTED
    assert q.claim("w", 1) == []
    (row,) = outbox_rows(q, job_id)
    assert json.loads(row.body) == {"id": "v9", "result": {}, "error": LEASE_EXHAUSTED}


def test_retryable_error_reschedules_until_attempts_spent(backend: str) -> None:
    q = make_queue(backend, max_attempts=2, retry_delay=0.0)
    job_id = q.submit("u", REQ())
    (l1,) = q.claim("w", 1)
    assert q.finish(job_id, l1.token, error="decoder crashed", retryable=True)
    assert q.get(job_id)["status"] == "RESCHEDULED"
    assert outbox_rows(q, job_id) == []  # not the end yet: no final callback
    (l2,) = q.claim("w", 1)
    assert q.finish(job_id, l2.token, error="decoder crashed", retryable=True)
    job = q.get(job_id)
    assert job["status"] == "FAILED" and job["error"] == "decoder crashed"
    assert len(outbox_rows(q, job_id)) == 1


def test_non_retryable_error_fails_at_once(backend: str) -> None:
    q = make_queue(backend)
    job_id = q.submit("u", REQ())
    (l1,) = q.claim("w", 1)
    assert q.finish(job_id, l1.token, error="cannot find the video")
    assert q.get(job_id)["status"] == "FAILED"


def test_release_gives_the_attempt_back(backend: str) -> None:
    q = make_queue(backend)
    job_id = q.submit("u", REQ())
    (l1,) = q.claim("w", 1)
    assert q.release(job_id, l1.token)
    assert q.get(job_id)["status"] == "RESCHEDULED"
    (l2,) = q.claim("w", 1)
    assert l2.attempts == 1


def test_cancel_paths(backend: str) -> None:
    """§7 kill: WAITING and DOING → CANCELLED at once; finished → fail to cancel; other uid → not found."""
    q = make_queue(backend)
    seen: list[str] = []
    q.cancel_listeners.append(seen.append)
    waiting = q.submit("u1", REQ())
    out = q.cancel(waiting, "u1")
    assert out["status"] == "CANCELLED" and set(out) == {"status", "created_at", "updated_at"}
    assert seen == [waiting]
    doing = q.submit("u1", REQ())
    (lease,) = q.claim("w", 1)
    with pytest.raises(JobNotFound):
        q.cancel(doing, "someone-else")
    q.cancel(doing, "u1")
    assert q.lost([(doing, lease.token)]) == {doing}  # the worker sees its lease is gone
    assert not q.finish(doing, lease.token, result={})
    assert q.get(doing)["status"] == "CANCELLED"
    with pytest.raises(CannotCancel):
        q.cancel(doing, "u1")
    final = json.loads(outbox_rows(q, doing)[-1].body)
    assert final["error"] == "context canceled"


def test_get_is_scoped_by_uid(backend: str) -> None:
    q = make_queue(backend)
    job_id = q.submit("alice", REQ())
    assert q.get(job_id, "alice")["id"] == job_id
    with pytest.raises(JobNotFound):
        q.get(job_id, "bob")
    assert q.get(job_id, None)["id"] == job_id
    assert q.list("bob") == []


def test_list_filter_and_paging(backend: str) -> None:
    """§7: oldest first, status filter, marker/limit paging."""
    q = make_queue(backend)
    ids = [q.submit("u", REQ()) for _ in range(7)]
    (lease,) = q.claim("w", 1)
    assert lease.job_id == ids[0]
    page1 = q.list("u", limit=3)
    assert [j["id"] for j in page1] == ids[:3]
    page2 = q.list("u", marker=page1[-1]["id"], limit=3)
    assert [j["id"] for j in page2] == ids[3:6]
    page3 = q.list("u", marker=page2[-1]["id"], limit=3)
    assert [j["id"] for j in page3] == ids[6:]
    assert [j["id"] for j in q.list("u", status="DOING")] == [ids[0]]
    assert [j["id"] for j in q.list("u", status="WAITING")] == ids[1:]
    with pytest.raises(InvalidRequest):
        q.list("u", marker="unknown")
    assert set(page1[0]) == {"id", "status", "created_at", "updated_at"}
    assert page1[0]["created_at"].endswith("Z") and "T" in page1[0]["created_at"]


def test_segment_and_op_callbacks_dedupe_across_reruns(backend: str) -> None:
    """A re-run after a crash produces the same message ids: the outbox keeps one row per callback."""
    q = make_queue(backend, lease_seconds=0.1)
    job_id = q.submit("u", REQ(), vid="vv")
    (l1,) = q.claim("w", 1)
    seg = {"offset_begin": 0, "offset_end": 0, "labels": [], "cuts": []}
    assert q.record_segment(job_id, l1.token, "pulp", 0, seg)
    time.sleep(0.15)
    q.sweep()
    (l2,) = q.claim("w", 1)
    assert q.record_segment(job_id, l2.token, "pulp", 0, seg)
    assert q.record_segment(job_id, l2.token, "pulp", 1, seg)
    assert q.record_op(job_id, l2.token, "pulp", {"labels": [], "segments": [seg, seg]})
    rows = outbox_rows(q, job_id)
    assert [r.msg_id for r in rows] == [cb.segment_msg_id(job_id, "pulp", 0), cb.segment_msg_id(job_id, "pulp", 1),
                                        cb.op_msg_id(job_id, "pulp")]
    assert json.loads(rows[0].body) == {"id": "vv", "op": "pulp", "result": seg}
    assert json.loads(rows[2].body)["code"] == 0


def test_hooks_are_stored_at_submit_and_old_rows_still_work(backend: str) -> None:
    """Hooks are worked out once, at submit; a database from before the ``hooks`` column gets it added in
    place, and its rows (hooks NULL) still get their callbacks, from the request."""
    q = make_queue(backend)
    J = q.t.Job
    job_id = q.submit("u", REQ(), vid="v1")
    stored = json.loads(J.get(J.job_id == job_id).hooks)
    assert stored == {"final": "http://127.0.0.1:9/final", "op": {"pulp": "http://127.0.0.1:9/op"},
                      "segment": {"pulp": "http://127.0.0.1:9/seg"}}
    from playhouse.migrate import SchemaMigrator, migrate

    migrate(SchemaMigrator.from_database(q.t.db).drop_column(J._meta.table_name, "hooks"))
    assert "hooks" not in {c.name for c in q.t.db.get_columns(J._meta.table_name)}
    q.t.create()  # as a newer version starting on the old database
    assert "hooks" in {c.name for c in q.t.db.get_columns(J._meta.table_name)}
    (lease,) = q.claim("w", 1)
    assert J.get(J.job_id == job_id).hooks is None
    assert q.record_op(job_id, lease.token, "pulp", {"labels": [], "segments": []})
    assert q.finish(job_id, lease.token, result={})
    assert [r.url for r in outbox_rows(q, job_id)] == ["http://127.0.0.1:9/op", "http://127.0.0.1:9/final"]


def test_outbox_chain_order_and_claim(backend: str) -> None:
    """Rows of one chain go out in order: a newer row waits while an older one is pending."""
    q = make_queue(backend)
    t = q.t
    for i in range(3):
        assert outbox.enqueue(t, "j1", f"m{i}", "http://x/a", {"i": i}, chain="j1 a", window=60)
    assert not outbox.enqueue(t, "j1", "m0", "http://x/a", {}, chain="j1 a", window=60)  # duplicate id
    outbox.enqueue(t, "j2", "other", "http://x/b", {}, chain="j2 b", window=60)
    got = outbox.claim_due(t, 10, hold=30)
    assert [d.msg_id for d in got] == ["m0", "other"]
    assert outbox.claim_due(t, 10, hold=30) == []  # claimed rows are held
    outbox.mark_delivered(t, got[0].seq, 200)
    assert outbox.mark_failed(t, got[1].seq, 500, "HTTP 500", [0.0], 0.0)
    assert [d.msg_id for d in outbox.claim_due(t, 10, hold=30)] == ["m1", "other"]


def test_outbox_expires_after_window(backend: str) -> None:
    q = make_queue(backend)
    outbox.enqueue(q.t, "j", "m", "http://x/a", {}, chain="c", window=0.5)
    (d,) = outbox.claim_due(q.t, 1, hold=1)
    assert not outbox.mark_failed(q.t, d.seq, None, "refused", [10.0], 0.0)  # next try past the window
    assert q.t.Outbox.get(q.t.Outbox.seq == d.seq).status == dbm.EXPIRED


def test_backoff_schedule_with_jitter() -> None:
    sched = [5, 30, 120]
    assert outbox.backoff(1, sched, 0.2, rand=lambda: 0.0) == 5
    assert outbox.backoff(2, sched, 0.2, rand=lambda: 1.0) == pytest.approx(36)
    assert outbox.backoff(9, sched, 0.0) == 120  # the last delay repeats


WORKER = textwrap.dedent("""
    import json, sys, time
    from argus_http.config import load_settings
    from argus_http.queue.tables import Tables, open_database
    from argus_http.queue.database import JobQueue
    import os
    url, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
    t = Tables(open_database(url))
    q = JobQueue(t, load_settings(env={}, overrides={"database_url": url, "data_dir": "/tmp/unused"}))
    q.counts()  # connected
    open(out + ".ready", "w").close()
    while not os.path.exists(os.path.join(os.path.dirname(out), "go")):  # start together
        time.sleep(0.005)
    claimed = []
    idle = 0
    while idle < 15:
        got = q.claim(name, 3)
        if not got:
            idle += 1
            time.sleep(0.02)
            continue
        idle = 0
        for l in got:
            claimed.append(l.job_id)
            assert q.touch(l.job_id, l.token)
            time.sleep(0.003)  # a little work: a worker looping claim -> finish alone could take every job
            assert q.finish(l.job_id, l.token, result={"by": name})
    json.dump(claimed, open(out, "w"))
""")


def test_two_worker_processes_never_run_a_lease_twice(backend: str, tmp_path: Path) -> None:
    """§8: two processes compete for 150 jobs; every job is claimed and finished exactly once."""
    q = make_queue(backend)
    ids = {q.submit("u", REQ(hook=None)) for _ in range(150)}
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), backend, f"w{i}", str(tmp_path / f"w{i}.json")],
                              cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}) for i in range(2)]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"w{i}.json.ready").exists() for i in range(2)):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (tmp_path / "go").touch()
    for p in procs:
        assert p.wait(120) == 0
    claimed = [json.loads((tmp_path / f"w{i}.json").read_text()) for i in range(2)]
    everything = claimed[0] + claimed[1]
    assert len(everything) == len(set(everything)) == 150
    assert set(everything) == ids
    assert all(len(c) > 0 for c in claimed), "both workers should have won some claims"
    assert q.counts()["FINISHED"] == 150


# -- the worker-side contract, run against every Backend (huey's StorageTests pattern) ------------------------
class QueueContract:
    """What a runner relies on from its queue (:class:`argus_http.queue.protocol.Backend`). Subclasses
    provide the ``queues`` fixture: ``(producer, backend)``, where ``producer`` is the database queue that
    jobs are submitted to and inspected in, and ``backend`` the implementation under test."""

    @pytest.fixture
    def queues(self, *args) -> tuple[JobQueue, Any]:
        raise NotImplementedError

    def test_claim_hands_out_each_job_once(self, queues) -> None:
        q, be = queues
        job_id = q.submit("7", REQ(), vid="v1")
        (lease,) = be.claim("w1", 5, ("video", "vframe"))
        assert (lease.job_id, lease.vid, lease.kind, lease.attempts) == (job_id, "v1", "video", 1)
        assert lease.request == REQ() and lease.uid == "7" and lease.token and lease.timeout > 0
        assert be.claim("w2", 5, ("video", "vframe")) == []
        assert q.get(job_id)["status"] == "DOING"

    def test_claim_only_the_kinds_asked_for(self, queues) -> None:
        q, be = queues
        vf = q.submit("u", {"data": {"uri": "http://127.0.0.1:9/v.mp4"}, "callback": "http://127.0.0.1:9/vf/"},
                      kind="vframe")
        assert be.claim("w", 5, ("video",)) == []
        assert [l.job_id for l in be.claim("w", 5, ("vframe",))] == [vf]

    def test_touch_lost_and_stale_tokens(self, queues) -> None:
        q, be = queues
        job_id = q.submit("u", REQ())
        (lease,) = be.claim("w", 1, ("video",))
        assert be.touch(job_id, lease.token)
        assert not be.touch(job_id, "not-the-token")
        assert be.lost([(job_id, lease.token)]) == set()
        assert be.lost([(job_id, "not-the-token")]) == {job_id}
        assert not be.finish(job_id, "not-the-token", result={})
        assert not be.record_segment(job_id, "not-the-token", "pulp", 0, {})
        assert not be.release(job_id, "not-the-token")

    def test_a_killed_job_is_lost(self, queues) -> None:
        q, be = queues
        job_id = q.submit("u", REQ())
        (lease,) = be.claim("w", 1, ("video",))
        q.cancel(job_id)
        assert be.lost([(job_id, lease.token)]) == {job_id}
        assert not be.touch(job_id, lease.token)
        assert not be.finish(job_id, lease.token, result={})

    def test_finish_stores_the_result_and_queues_the_final_callback(self, queues) -> None:
        q, be = queues
        job_id = q.submit("u", REQ(), vid="v1")
        (lease,) = be.claim("w", 1, ("video",))
        result = {"pulp": {"labels": [], "segments": []}}
        assert be.finish(job_id, lease.token, result=result)
        job = q.get(job_id)
        assert job["status"] == "FINISHED" and job["result"] == result
        assert [(r.msg_id, json.loads(r.body)) for r in outbox_rows(q, job_id)] == [
            (cb.final_msg_id(job_id), {"id": "v1", "result": result})]

    def test_errors_reschedule_or_fail(self, queues) -> None:
        q, be = queues
        job_id = q.submit("u", REQ())
        (lease,) = be.claim("w", 1, ("video",))
        assert be.finish(job_id, lease.token, error="internal error", retryable=True)
        assert q.get(job_id)["status"] == "RESCHEDULED"
        q.t.Job.update(run_after=0).execute()  # skip the retry delay
        (again,) = be.claim("w", 1, ("video",))
        assert again.attempts == 2
        assert be.finish(job_id, again.token, error="cannot find the video")
        job = q.get(job_id)
        assert job["status"] == "FAILED" and job["error"] == "cannot find the video"

    def test_release_gives_the_attempt_back(self, queues) -> None:
        q, be = queues
        job_id = q.submit("u", REQ())
        (lease,) = be.claim("w", 1, ("video",))
        assert be.release(job_id, lease.token)
        assert q.get(job_id)["status"] == "RESCHEDULED"
        (again,) = be.claim("w", 1, ("video",))
        assert again.attempts == 1 and again.token != lease.token

    def test_segment_and_op_callbacks_use_the_hooks_of_the_submitted_request(self, queues) -> None:
        q, be = queues
        job_id = q.submit("u", REQ(), vid="v1")
        (lease,) = be.claim("w", 1, ("video",))
        seg = {"offset_begin": 0, "offset_end": 1000, "labels": [], "cuts": []}
        assert be.record_segment(job_id, lease.token, "pulp", 0, seg)
        assert be.record_segment(job_id, lease.token, "pulp", 0, seg)  # a repeat is accepted, not re-sent
        assert be.record_op(job_id, lease.token, "pulp", {"labels": [], "segments": []})
        assert be.record_segment(job_id, lease.token, "other-op", 0, seg)  # no hook: nothing queued
        rows = [(r.msg_id, r.url, json.loads(r.body)) for r in outbox_rows(q, job_id)]
        assert rows == [
            (cb.segment_msg_id(job_id, "pulp", 0), "http://127.0.0.1:9/seg", cb.segment_body("v1", "pulp", seg)),
            (cb.op_msg_id(job_id, "pulp"), "http://127.0.0.1:9/op",
             cb.op_body("v1", "pulp", {"labels": [], "segments": []}))]

    def test_vframe_callbacks_are_queued_in_order(self, queues) -> None:
        q, be = queues
        job_id = q.submit("u", {"data": {"uri": "http://127.0.0.1:9/v.mp4"}, "callback": "http://127.0.0.1:9/vf/"},
                          kind="vframe")
        (lease,) = be.claim("w", 1, ("vframe",))
        for step in ("begin", "end"):
            url = cb.vframe_url("http://127.0.0.1:9/vf/", step, job_id, lease.token)
            assert be.record_callback(job_id, lease.token, f"{lease.token}.{step}", url, {"code": 0})
        rows = outbox_rows(q, job_id)
        assert [r.url.rsplit("/", 3)[1] for r in rows] == ["begin", "end"]
        assert len({r.chain for r in rows}) == 1
        assert not be.record_callback(job_id, "not-the-token", "x", rows[0].url, {})


class TestDatabaseQueue(QueueContract):
    @pytest.fixture
    def queues(self, backend: str) -> tuple[JobQueue, Any]:
        q = make_queue(backend)
        return q, q


class TestRemoteQueue(QueueContract):
    """The queue API of a real server (API-only: no engine, no sender) through :class:`RemoteQueue`."""

    @pytest.fixture
    def queues(self, tmp_path: Path):
        from argus_http.queue.remote import RemoteQueue

        from conftest import running_server

        with running_server(tmp_path, None, run_sender=False) as (srv, api):
            yield srv.queue, RemoteQueue(api.base, retries=1)
