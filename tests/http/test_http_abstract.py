"""Video abstract tasks in the job queue (CONTRACT §12), on SQLite and PostgreSQL (``ARGUS_TEST_PG_URL``): one
unfinished task per (uid, source), re-analysis replaces an ended one, priority order, percent that never goes
down, and the notification written by the transaction that ends a task.
"""

from __future__ import annotations

import json
import time

import pytest

from argus_http.errors import SourceBusy
from argus_http.queue import abstracts
from argus_http.queue import tables as dbm
from argus_http.queue.protocol import Hooks

from test_http_queue_contract import backend, make_queue  # noqa: F401  (the two-backend fixture)


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
