"""The database: one connection factory for SQLite and PostgreSQL, and the three tables (jobs, results, outbox).

SQLite (default) runs in WAL mode with ``BEGIN IMMEDIATE`` write transactions: several processes may share
the file, and a transaction never fails half-way by upgrading a read lock. PostgreSQL is used when the URL
says ``postgresql://`` so that workers on several machines share one queue (claims use
``FOR UPDATE SKIP LOCKED``, see :mod:`argus_http.queue.database`). What differs between the two is
declared once, as :class:`Capabilities` (peewee-style per-database flags), and read by the queue and the
outbox instead of branching on the database class.

Tables are built by :class:`Tables` for a given database rather than bound to a global, so one process
can hold two databases (the tests do).
"""

from __future__ import annotations

import datetime as _dt
import logging
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec
from urllib.parse import urlsplit

import peewee as pw
from playhouse.db_url import connect as url_connect

log = logging.getLogger("argus.queue")

# Job states (CONTRACT §7).
WAITING = "WAITING"
DOING = "DOING"
RESCHEDULED = "RESCHEDULED"
FINISHED = "FINISHED"
FAILED = "FAILED"
CANCELLED = "CANCELLED"
STATUSES = (WAITING, DOING, RESCHEDULED, FINISHED, FAILED, CANCELLED)
RUNNABLE = (WAITING, RESCHEDULED)
FINAL = (FINISHED, FAILED, CANCELLED)

# Delivery states of an outbox row.
PENDING = "PENDING"
DELIVERED = "DELIVERED"
GONE = "GONE"  # the receiver answered 410: stop retrying (Standard Webhooks)
EXPIRED = "EXPIRED"  # retries exhausted (callback_window)


def now() -> float:
    """Wall-clock seconds; every timestamp in the tables uses it (leases compare across machines)."""
    return time.time()


def rfc3339(ts: float) -> str:
    """``2026-01-02T15:04:05Z`` (CONTRACT §7)."""
    return _dt.datetime.fromtimestamp(ts, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


#: Kind of a video abstract task (CONTRACT §12): keyed by its caller and source, at most one unfinished.
ABSTRACT = "abstract"


def open_database(url: str) -> pw.Database:
    """Open ``sqlite:///path`` or ``postgresql://...`` (``postgres://`` too)."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        path = url[len("sqlite:///"):] if url.startswith("sqlite:///") else parts.path
        if path not in ("", ":memory:"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        return pw.SqliteDatabase(
            path or ":memory:",
            pragmas={
                "journal_mode": "wal",
                # Writers from other processes wait instead of failing at once.
                "busy_timeout": 15000,
                "synchronous": "normal",
                # Checkpoints run on a thread of their own (Tables, _Checkpointer), not inside a COMMIT.
                "wal_autocheckpoint": 0,
            },
            lock_type="IMMEDIATE",
            timeout=15,
        )
    if parts.scheme in ("postgresql", "postgres", "postgresql+pool", "postgres+pool"):
        return url_connect(url.replace("postgres://", "postgresql://", 1))
    raise ValueError(f"unsupported database URL scheme {parts.scheme!r} (use sqlite:/// or postgresql://)")


class Capabilities(msgspec.Struct, frozen=True):
    """What a database can do that the queue relies on (like peewee's own ``Database.for_update``)."""

    #: ``SELECT ... FOR UPDATE`` row locks: needed where several writers run at once (PostgreSQL).
    for_update: bool = False
    #: ``FOR UPDATE SKIP LOCKED``: claimers skip rows another claimer holds instead of waiting.
    skip_locked: bool = False
    #: One writer at a time for the whole database: serialise this process's writers on a lock (SQLite).
    single_writer: bool = False
    #: A failed statement aborts the transaction until a rollback (PostgreSQL).
    rollback_after_error: bool = False
    #: ``UPDATE … RETURNING`` and ``WITH … AS MATERIALIZED`` (PostgreSQL; SQLite from 3.35): a claim is one
    #: statement instead of a SELECT and an UPDATE per row (bench/bench_claims.py).
    returning: bool = False
    #: A write-ahead log that its writers would checkpoint inside a COMMIT (SQLite in WAL mode): Tables
    #: checkpoints it on a thread of its own instead (:class:`_Checkpointer`).
    wal_checkpoints: bool = False


#: Per database class, most specific first (looked up along the class's MRO).
CAPABILITIES: dict[type[pw.Database], Capabilities] = {
    pw.PostgresqlDatabase: Capabilities(for_update=True, skip_locked=True, rollback_after_error=True,
                                        returning=True),
    pw.SqliteDatabase: Capabilities(single_writer=True, returning=sqlite3.sqlite_version_info >= (3, 35, 0),
                                    wal_checkpoints=True),
}


def capabilities(database: pw.Database) -> Capabilities:
    """The declared capabilities of ``database`` (an unknown kind gets the cautious defaults)."""
    for cls in type(database).__mro__:
        if cls in CAPABILITIES:
            return CAPABILITIES[cls]
    return Capabilities(single_writer=True)


class Prepared:
    """A peewee query turned into SQL once and run many times with new values.

    Measured (bench/RESULTS-service.md, finding B; cProfile of 2,000 claims on SQLite): peewee building the
    SQL text took two thirds of a claim, the database itself an eighth. Hot statements are therefore built
    once: ``build(**standins)`` makes the query from one stand-in value per slot, the places where each
    stand-in lands in the parameter list are recorded, and :meth:`execute` puts the real values there.

    A stand-in must have the type the real values will have (values are passed to the driver as given,
    without the field's conversion) and must equal no constant of the query; a stand-in that lands nowhere,
    or twice on one place, is refused at once.
    """

    def __init__(self, db: pw.Database, build: Callable[..., pw.Query], **standins: Any) -> None:
        self.db = db
        self.sql, params = build(**standins).sql()
        self._params = list(params)
        self._slots: dict[str, list[int]] = {}
        for name, v in standins.items():
            where = [i for i, p in enumerate(self._params) if type(p) is type(v) and p == v]
            if not where:
                raise ValueError(f"stand-in for {name!r} is not a parameter of the query")
            self._slots[name] = where
        taken = [i for places in self._slots.values() for i in places]
        if len(taken) != len(set(taken)):
            raise ValueError("two stand-ins share a parameter: make them distinct")

    def params(self, **values: Any) -> list[Any]:
        """The statement's parameters with ``values`` in its slots."""
        params = list(self._params)
        for name, places in self._slots.items():
            v = values[name]
            for i in places:
                params[i] = v
        return params

    def execute(self, **values: Any) -> Any:
        """Run the statement with ``values`` in its slots; returns the DB-API cursor."""
        return self.db.execute_sql(self.sql, self.params(**values))

    def first(self, model: type[pw.Model], **values: Any) -> Any:
        """Run a SELECT of ``model``'s columns; its first row as a ``model`` instance, or None."""
        return next(iter(model.raw(self.sql, *self.params(**values))), None)


class _Checkpointer:
    """One thread per process that checkpoints the SQLite databases written in it, off the write path.

    Left to itself, SQLite checkpoints inside the COMMIT that fills the log past 1,000 pages: that thread
    copies the pages back and syncs while it still holds this process's write lock, so every writer queued
    behind it waits. Measured in-process at 200 submits/s: 15 of 2,000 commits took 5–32 ms, submit p99 was
    10–13 ms; with the checkpoints on this thread no commit took 1 ms and submit p99 was 1.1–1.7 ms
    (bench/RESULTS-service.md). The checkpoints are PASSIVE: they never block a reader or a writer.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval  #: seconds of commits gathered into one checkpoint
        self._written: weakref.WeakSet[Tables] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def written(self, tables: "Tables") -> None:
        """``tables`` committed a write: checkpoint it within ``interval``."""
        with self._lock:
            self._written.add(tables)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="argus-wal-checkpoint", daemon=True)
                self._thread.start()
        self._wake.set()

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(self.interval)
            self._wake.clear()  # before taking the set: a write from now on wakes the next round
            with self._lock:
                due = list(self._written)
                self._written.clear()
            for tables in due:
                try:
                    tables.checkpoint()
                except Exception:  # a failed checkpoint leaves the log longer, nothing else
                    log.exception("WAL checkpoint failed")
                finally:
                    tables.close()  # this thread's connection: one checkpoint a second needs none kept
            del due


_CHECKPOINTER = _Checkpointer()


class Tables:
    """The model classes bound to one database, and its schema creation."""

    def __init__(self, database: pw.Database) -> None:
        self.db = database
        self.caps = capabilities(database)
        # SQLite has one writer at a time, and its busy handler *sleeps* (1, 2, 5 … 100 ms) between retries
        # instead of queueing: threads of this process wait on a lock instead, so they get the database as
        # soon as it is free (submit p99 with a co-located runner: 114–137 ms → 23–36 ms, bench/RESULTS.md).
        # busy_timeout still arbitrates between processes.
        self._write_lock: threading.RLock | None = threading.RLock() if self.caps.single_writer else None

        class Base(pw.Model):
            class Meta:
                database = self.db
                legacy_table_names = False

        class Job(Base):
            """One async video (or vframe) job. ``request`` is the JSON body as submitted; ``hooks`` its
            callback URLs (:class:`argus_http.queue.protocol.Hooks` as JSON), worked out at submit."""

            seq = pw.AutoField()  # arrival order: paging and "oldest first"
            job_id = pw.CharField(max_length=32, unique=True)
            uid = pw.CharField(max_length=64, default="")
            kind = pw.CharField(max_length=16, default="video")
            vid = pw.CharField(max_length=256, default="")
            request = pw.TextField()
            hooks = pw.TextField(null=True)
            status = pw.CharField(max_length=16, default=WAITING)
            attempts = pw.IntegerField(default=0)
            max_attempts = pw.IntegerField(default=3)
            #: A fresh random token per claim: only its holder may touch/finish (no lease run twice).
            lease_token = pw.CharField(max_length=40, null=True)
            lease_owner = pw.CharField(max_length=128, null=True)
            lease_until = pw.DoubleField(null=True)
            run_after = pw.DoubleField(default=0.0)
            #: Higher runs first; equal priority in arrival order (CONTRACT §12: abstract ``priority`` 0–100;
            #: video jobs are 0). Claims order by ``priority DESC, seq``.
            priority = pw.IntegerField(default=0)
            #: 0–100 as reported by the runner, never lowered (a retry starts below it; CONTRACT §12)
            percent = pw.IntegerField(default=0)
            #: the media's length once the runner knows it
            duration_ms = pw.IntegerField(null=True)
            #: a live job's connection, last reported (:class:`argus_http.queue.protocol.LiveState` as JSON)
            live = pw.TextField(null=True)
            error = pw.TextField(null=True)
            created_at = pw.DoubleField()
            #: the first claim (a retry keeps it): the abstract's ``startTime``
            started_at = pw.DoubleField(null=True)
            updated_at = pw.DoubleField()

            class Meta:
                table_name = "argus_job"
                indexes = ((("status", "run_after"), False), (("uid", "seq"), False),
                           (("status", "lease_until"), False), (("status", "priority", "seq"), False),
                           (("uid", "kind", "vid", "seq"), False))

        # CONTRACT §12: "a source being analysed → 409", kept by the database itself so that two PUTs racing
        # on PostgreSQL cannot both insert. Keyed abstract tasks only (vid = the source's hash); the queue API
        # may carry unkeyed jobs of any kind. A constant SQL condition: partial indexes take no parameters.
        Job.add_index(Job.index(Job.uid, Job.vid, unique=True, name="argus_job_one_unfinished_abstract",
                                where=pw.SQL(f"kind = '{ABSTRACT}' AND vid <> '' AND status IN "
                                             f"('{WAITING}', '{RESCHEDULED}', '{DOING}')")))

        class JobResult(Base):
            """The final result of a job (CONTRACT §7 shape), kept apart so job listings stay small."""

            job_id = pw.CharField(max_length=32, primary_key=True)
            result = pw.TextField()

            class Meta:
                table_name = "argus_job_result"

        class Outbox(Base):
            """A callback to deliver. Written in the transaction that made the state change it reports."""

            seq = pw.AutoField()
            #: Deterministic per message (job, kind, op, index): a re-run of a job cannot enqueue a
            #: callback twice, and receivers can de-duplicate on the ``webhook-id`` header.
            msg_id = pw.CharField(max_length=200, unique=True)
            job_id = pw.CharField(max_length=32, index=True)
            #: Rows of one chain are delivered in ``seq`` order (one job's callbacks to one URL).
            chain = pw.CharField(max_length=300, index=True)
            url = pw.TextField()
            body = pw.TextField()
            status = pw.CharField(max_length=16, default=PENDING)
            attempts = pw.IntegerField(default=0)
            next_at = pw.DoubleField()
            created_at = pw.DoubleField()
            deadline = pw.DoubleField()
            last_status = pw.IntegerField(null=True)
            last_error = pw.TextField(null=True)
            delivered_at = pw.DoubleField(null=True)

            class Meta:
                table_name = "argus_outbox"
                indexes = ((("status", "next_at"), False), (("chain", "status", "seq"), False))

        class Idempotency(Base):
            """An ``Idempotency-Key`` a caller submitted with: the same key and body within the window
            returns the same job (AWS ``ClientRequestToken`` semantics); another body is a conflict."""

            uid = pw.CharField(max_length=64)
            key = pw.CharField(max_length=255)
            body_sha256 = pw.CharField(max_length=64)
            job_id = pw.CharField(max_length=32)
            created_at = pw.DoubleField(index=True)

            class Meta:
                table_name = "argus_idempotency"
                primary_key = pw.CompositeKey("uid", "key")

        self.Job = Job
        self.JobResult = JobResult
        self.Outbox = Outbox
        self.Idempotency = Idempotency
        self.models = (Job, JobResult, Outbox, Idempotency)

    def create(self) -> None:
        """Create missing tables and indexes (idempotent; safe from several processes at once)."""
        with self.db.connection_context():
            # Columns first: an index over a column an older version did not have cannot be built before it.
            if self.db.table_exists(self.Job._meta.table_name):
                self._add_missing_columns()
            try:
                self.db.create_tables(self.models, safe=True)
            except (pw.IntegrityError, pw.ProgrammingError, pw.OperationalError):
                # Two processes creating the schema at once on PostgreSQL: the loser sees a duplicate
                # type/table error; the tables exist now, which is all we need.
                self.db.rollback() if not self.db.is_closed() and self.caps.rollback_after_error else None
                self.db.create_tables(self.models, safe=True)

    def _add_missing_columns(self) -> None:
        """Columns added since a table was first created (``argus_job.hooks``, ``priority``, ``percent``,
        ``duration_ms``, ``started_at``): added in place with a default, so a database written by an older
        version keeps working (rows without hooks parse their request; old rows get priority 0)."""
        from playhouse.migrate import SchemaMigrator, migrate

        table = self.Job._meta.table_name
        added = {"hooks": pw.TextField(null=True), "priority": pw.IntegerField(default=0),
                 "percent": pw.IntegerField(default=0), "duration_ms": pw.IntegerField(null=True),
                 "started_at": pw.DoubleField(null=True), "live": pw.TextField(null=True)}
        have = {c.name for c in self.db.get_columns(table)}
        for name, field in added.items():
            if name in have:
                continue
            try:
                migrate(SchemaMigrator.from_database(self.db).add_column(table, name, field))
            except (pw.ProgrammingError, pw.OperationalError):  # another process added it first
                self.db.rollback() if self.caps.rollback_after_error else None
    @contextmanager
    def tx(self) -> Iterator[None]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite, serialised within this process)."""
        if self._write_lock is None:
            with self.db.atomic():
                yield
        else:
            with self._write_lock:
                with self.db.atomic():
                    yield
        if self.caps.wal_checkpoints:
            _CHECKPOINTER.written(self)

    def checkpoint(self) -> None:
        """Copy the write-ahead log back into the database file (SQLite, PASSIVE; elsewhere nothing)."""
        if self.caps.wal_checkpoints:
            self.db.execute_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def close(self) -> None:
        if not self.db.is_closed():
            self.db.close()
