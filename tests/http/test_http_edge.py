"""The HTTP edge as pure pieces: typed bodies, the one error map, and the declared database capabilities."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import falcon
import falcon.testing
import peewee as pw
import pytest

from argus_core.errors import InvalidRequest, VideoNotFound
from argus_http.edge import ERRORS, on_error, read_body
from argus_http.errors import JobNotFound, UnsupportedMediaType
from argus_http.queue.tables import Capabilities, Prepared, Tables, capabilities, open_database
from argus_http.schemas import Events, FaceSearch, SegmentEvent


def _req(body: bytes, ctype: str | None = "application/json") -> falcon.Request:
    req = falcon.testing.create_req(method="POST", headers={"Content-Type": ctype} if ctype else {})
    req.context.body = body
    return req


@pytest.mark.parametrize("body, ctype, error", [
    (b'{"data": {"uri": "x"}}', "text/plain", UnsupportedMediaType),
    (b"", "application/json", InvalidRequest),
    (b"{nope", "application/json", InvalidRequest),
    (b'{"data": {}}', "application/json", InvalidRequest),  # uri missing
    (b'{"data": {"uri": "x"}, "params": {"threshold": 2}}', None, InvalidRequest),  # out of [0, 1]
])
def test_read_body_refuses(body: bytes, ctype: str | None, error: type) -> None:
    with pytest.raises(error):
        read_body(_req(body, ctype), FaceSearch)


def test_read_body_decodes_typed_and_tagged() -> None:
    got = read_body(_req(b'{"data": {"uri": "x"}}', None), FaceSearch)
    assert got.data.uri == "x" and got.params is None
    ev = read_body(_req(b'{"lease": "t", "events": [{"type": "segment", "op": "pulp", "index": 2}]}'), Events)
    assert ev.events == [SegmentEvent(op="pulp", index=2)] and ev.lease == "t"
    with pytest.raises(InvalidRequest):
        read_body(_req(b'{"events": [{"type": "nope"}]}'), Events)
    assert read_body(_req(b" ", None), dict[str, Any], required=False) == {}  # optional body: the defaults


@pytest.mark.parametrize("exc, status, message", [
    (JobNotFound(), 404, "job not found"),
    (VideoNotFound("cannot find the video"), 424, "cannot find the video"),
    (falcon.HTTPNotFound(), 404, "not found"),
    (falcon.HTTPMethodNotAllowed(["GET"]), 405, "method not allowed"),
    (RuntimeError("secret path /etc/x"), 500, "internal error"),  # never the exception's text
])
def test_errors_map_by_type(exc: Exception, status: int, message: str) -> None:
    resp = falcon.Response()
    on_error(_req(b""), resp, exc, {})
    assert (resp.status, resp.media) == (status, {"error": message})


def test_the_error_map_covers_every_exception() -> None:
    assert Exception in ERRORS


class _MyPostgres(pw.PostgresqlDatabase):
    pass


@pytest.mark.parametrize("db, for_update, single_writer, returning", [
    (pw.SqliteDatabase(":memory:"), False, True, sqlite3.sqlite_version_info >= (3, 35)),
    (pw.PostgresqlDatabase("x"), True, False, True),
    (_MyPostgres("x"), True, False, True),  # found along the MRO
    (pw.MySQLDatabase("x"), False, True, False),  # not declared: the cautious defaults
])
def test_capabilities_are_declared_per_database(db: Any, for_update: bool, single_writer: bool,
                                                returning: bool) -> None:
    caps = capabilities(db)
    assert isinstance(caps, Capabilities)
    assert (caps.for_update, caps.single_writer, caps.returning) == (for_update, single_writer, returning)


def test_prepared_statements_place_values_and_refuse_stand_ins_they_cannot_place(tmp_path: Path) -> None:
    t = Tables(open_database(f"sqlite:///{tmp_path / 'q.db'}"))
    t.create()
    J = t.Job
    st = Prepared(t.db, lambda a, b: J.select(J.seq).where((J.run_after > a) & (J.vid == b)), a=-1.0e300, b="\0b")
    J.insert(job_id="x", request="{}", vid="v", run_after=2.0, created_at=0.0, updated_at=0.0).execute()
    assert st.execute(a=1.0, b="v").fetchall() == [(1,)] and st.execute(a=3.0, b="v").fetchall() == []
    with pytest.raises(ValueError, match="not a parameter"):
        Prepared(t.db, lambda a: J.select().where(J.run_after > 5.0), a=-1.0)
    with pytest.raises(ValueError, match="share"):
        Prepared(t.db, lambda a, b: J.select().where(J.run_after > a), a=-1.0, b=-1.0)
    t.close()


def test_sqlite_checkpoints_run_off_the_write_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A COMMIT never checkpoints the WAL (that stalled every queued writer); the checkpoint thread does,
    within its interval, and copies the log back into the database file."""
    from argus_http.queue import tables as dbm

    monkeypatch.setattr(dbm._CHECKPOINTER, "interval", 0.05)
    path = tmp_path / "q.db"
    t = Tables(open_database(f"sqlite:///{path}"))
    t.create()
    assert t.db.execute_sql("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    go, ran = threading.Event(), threading.Event()
    checkpoint = t.checkpoint
    monkeypatch.setattr(t, "checkpoint", lambda: (go.wait(10), checkpoint(), ran.set()))
    before = path.stat().st_size
    for i in range(300):  # ~2,000 log pages: SQLite alone would have checkpointed inside a COMMIT
        with t.tx():
            t.Job.insert(job_id=f"j{i}", request="{}" * 200, created_at=0.0, updated_at=0.0).execute()
    assert path.stat().st_size == before  # every page is still in the log
    go.set()
    assert ran.wait(5) and path.stat().st_size > before
    t.close()
