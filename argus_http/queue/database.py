"""The durable job queue (CONTRACT §7–§8): states, leases, the sweeper, and callbacks written with each change.

States: WAITING → DOING → FINISHED / FAILED / CANCELLED; a lease that expires or a retryable error puts a
DOING job back as RESCHEDULED until ``max_attempts`` claims were spent, then FAILED.

Leases, not held transactions: :meth:`JobQueue.claim` commits at once, hands out a fresh random token, and
every later write (touch, segment, finish) must present it while the job is still DOING — so a worker that
lost its lease (expired, killed, re-claimed elsewhere) can never change the job again, and no lease runs
twice. Each state change and the callbacks it causes are one transaction (the outbox pattern).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import logging
import secrets
from typing import Any, Callable, Iterable, Sequence

import msgspec
import peewee as pw

from argus_core import verdict
from argus_core.errors import InvalidRequest
from argus_core.request import VideoRequest, parse_request

from ..config import Settings
from ..delivery import callbacks as cb
from ..delivery import outbox
from ..errors import CannotCancel, IdempotencyConflict, JobNotFound, SourceBusy
from . import abstracts
from . import tables as dbm
from .protocol import CANCELLED_MESSAGE, Hooks, Lease, LiveState, Record
from .tables import Prepared, Tables, rfc3339

log = logging.getLogger("argus.queue")

#: Random bytes of a lease token: 96 bits, never guessed; the row's ``seq`` follows them, which keeps
#: ``<24 hex>-<seq>`` within the 40-character column up to seq 10**15.
_TOKEN_BYTES = 12

#: Stand-ins for the slots of prepared statements (:class:`Prepared`): of the real values' types, and equal
#: to no constant of a query.
_STANDINS: dict[str, Any] = {
    "ts": -1.0e300, "until": -2.0e300, "n": -987_654_321, "max_attempts": -987_654_322, "priority": -987_654_323,
    "seq": -987_654_324,
    **{name: f"\0{name}" for name in ("prefix", "owner", "job_id", "uid", "kind", "vid", "request", "hooks",
                                      "token", "result")}}

#: Error text of a job whose worker vanished ``max_attempts`` times.
LEASE_EXHAUSTED = "job failed: worker lost (attempts exhausted)"

__all__ = ["CANCELLED_MESSAGE", "LEASE_EXHAUSTED", "JobQueue", "Lease", "new_job_id", "rfc3339"]


def new_job_id() -> str:
    """24 hex characters, like the original's ObjectIds (unguessable: ids are not a secret, but
    listing another user's jobs by guessing should not be easy either)."""
    return secrets.token_hex(12)


def _loads(text: str | None) -> Any:
    return None if text is None else msgspec.json.decode(text)


def _dumps(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()


_HOOKS = msgspec.json.Decoder(Hooks)


def _live_state(text: str | None) -> LiveState | None:
    if not text:
        return None
    try:
        return msgspec.json.decode(text, type=LiveState)
    except msgspec.ValidationError:  # written by a newer or broken worker: shown as unknown, never a 500
        return None


def resume_point(text: str | None) -> int:
    """Where a rescheduled live job's clock starts: one past the last frame its previous run reported."""
    live = _live_state(text)
    return 0 if live is None or live.offset_ms is None else live.offset_ms + 1


def live_view(live: LiveState) -> dict[str, Any]:
    """The job GET's ``live`` (issue 12): ``{connected, reconnects, last_frame_at, lag_ms}``."""
    return {"connected": live.connected, "reconnects": live.reconnects,
            "last_frame_at": None if live.last_frame_at is None else rfc3339(live.last_frame_at),
            "lag_ms": live.lag_ms}


def hooks_of_request(request: dict[str, Any]) -> Hooks:
    """Hook URLs of a request body that was not parsed at the edge (a direct caller of ``submit``, or a
    row written before hooks were stored): parsed here, once."""
    try:
        return Hooks.of(parse_request(request, None, max_interval=float("inf")))
    except InvalidRequest:
        return Hooks()


#: how long an ``Idempotency-Key`` names its job (24 h, as Stripe's and the issue's window)
IDEMPOTENCY_WINDOW_S = 24 * 3600.0


class JobQueue:
    """All job-state changes. Thread-safe (each thread uses its own connection)."""

    def __init__(self, tables: Tables, settings: Settings) -> None:
        self.t = tables
        self.s = settings
        #: Called (outside the transaction) with the job id after a job was cancelled, so an in-process
        #: runner can stop the engine at once rather than at its next poll.
        self.cancel_listeners: list[Callable[[str], None]] = []
        #: Called after a transaction that enqueued callbacks, to wake the sender.
        self.outbox_listeners: list[Callable[[], None]] = []
        self._prepared: dict[Any, Prepared] = {}

    def close_thread(self) -> None:
        """Close the calling thread's database connection (peewee keeps one per thread): job threads call
        this when they end, so neither connections nor PostgreSQL server processes pile up."""
        self.t.close()

    # -- helpers ---------------------------------------------------------------------------------
    def _lock_rows(self, q: pw.Select, skip_locked: bool = False) -> pw.Select:
        # A single-writer database (SQLite, BEGIN IMMEDIATE) needs no row locks; the others do.
        if self.t.caps.for_update:
            return q.for_update(skip_locked=(skip_locked and self.t.caps.skip_locked) or None)
        return q

    @staticmethod
    def _hooks(job: Any) -> Hooks:
        """The hooks stored with the job at submit (rows from before that: from the request, once)."""
        return _HOOKS.decode(job.hooks) if job.hooks else hooks_of_request(_loads(job.request))

    def _enqueue(self, job_id: str, msg_id: str, url: str | None, body: dict[str, Any]) -> bool:
        if not url:
            return False
        return outbox.enqueue(self.t, job_id, msg_id, url, body, chain=cb.chain_of(job_id, url),
                              window=self.s.callback_window)

    def _wake_sender(self) -> None:
        for fn in self.outbox_listeners:
            try:
                fn()
            except Exception:  # a listener must never break a state change
                log.exception("outbox listener failed")

    def _final_callback(self, job: Any, result: dict[str, Any] | None, error: str | None) -> bool:
        """The callback of a job's end, in the transaction that ended it (call after the row's update)."""
        if job.kind == dbm.ABSTRACT:
            if not job.hooks:  # no notification named
                return False
            # CONTRACT §12: the notification carries the GET body, so it is built from the row as now written
            ended = self._record(self.t.Job.get(self.t.Job.seq == job.seq), result)
            return self._enqueue(job.job_id, abstracts.message_id(job.job_id), _HOOKS.decode(job.hooks).final,
                                 abstracts.notification(ended))
        if job.kind != "video":
            return False
        h = self._hooks(job)
        return self._enqueue(job.job_id, cb.final_msg_id(job.job_id), h.final,
                             cb.final_body(job.vid, result, error, h.meta))

    def _leased(self, job_id: str, token: str) -> Any:
        """The job's row while ``token`` holds its lease (locked where rows lock), else None."""
        return self._stmt("leased", self._leased_row).first(self.t.Job, job_id=job_id, token=token)

    def _leased_row(self, job_id: str, token: str) -> pw.Select:
        J = self.t.Job
        return self._lock_rows(J.select().where((J.job_id == job_id) & (J.lease_token == token)
                                                & (J.status == dbm.DOING)))

    # -- producer side ---------------------------------------------------------------------------
    def submit(self, uid: str, request: dict[str, Any], vid: str = "", kind: str = "video",
               parsed: VideoRequest | None = None, idempotency_key: str | None = None, priority: int = 0,
               hooks: Hooks | None = None, exclusive: bool = False) -> str:
        """Store a new WAITING job; returns its id. ``parsed``: the request as the edge parsed it, whose
        hooks are stored with the job (without it, a video request is parsed here, once); ``hooks``: those of
        another kind (an abstract's notification URL).

        ``idempotency_key``: the same key with the same request (and video id) within
        :data:`IDEMPOTENCY_WINDOW_S` returns the first job's id and creates nothing; with another request it
        raises :class:`IdempotencyConflict` (409). ``priority``: higher is claimed first (CONTRACT §12).

        ``exclusive`` (abstract tasks, CONTRACT §12): while a job of the same (uid, kind, vid) is unfinished,
        raise :class:`SourceBusy` (409); ended ones of that key are deleted with their results, so the new
        analysis overwrites the old."""
        ts = dbm.now()
        job_id = new_job_id()
        if hooks is None and kind == "video":
            hooks = Hooks.of(parsed) if parsed is not None else hooks_of_request(request)
        stored = None if hooks is None else _dumps(hooks)
        body = _dumps(request)
        digest = hashlib.sha256(f"{kind}\0{vid}\0".encode() + body.encode()).hexdigest()
        try:
            return self._insert(uid, kind, vid, body, stored, job_id, ts, idempotency_key, digest, priority,
                                exclusive)
        except pw.IntegrityError:
            if exclusive:  # another submit of the same key won the race (the partial unique index)
                raise SourceBusy() from None
            if idempotency_key is None:
                raise
            # the same key submitted twice at the same moment: the other one won; answer with its job
            return self._insert(uid, kind, vid, body, stored, new_job_id(), dbm.now(), idempotency_key, digest,
                                priority)

    def _insert(self, uid: str, kind: str, vid: str, body: str, hooks: str | None, job_id: str, ts: float,
                idempotency_key: str | None, digest: str, priority: int = 0, exclusive: bool = False) -> str:
        I = self.t.Idempotency
        with self.t.tx():
            if exclusive:
                self._replace(uid, kind, vid)
            if idempotency_key is not None:
                I.delete().where(I.created_at < ts - IDEMPOTENCY_WINDOW_S).execute()
                seen = I.get_or_none((I.uid == uid) & (I.key == idempotency_key))
                if seen is not None:
                    if seen.body_sha256 != digest:
                        raise IdempotencyConflict(detail=f"key {idempotency_key!r} belongs to job {seen.job_id}", public=True)
                    return seen.job_id
                I.insert(uid=uid, key=idempotency_key, body_sha256=digest, job_id=job_id, created_at=ts).execute()
            self._stmt("insert", self._new_job).execute(job_id=job_id, uid=uid, kind=kind, vid=vid, request=body,
                                                        hooks=hooks, max_attempts=self.s.max_attempts,
                                                        priority=priority, ts=ts)
        return job_id

    def _new_job(self, job_id: str, uid: str, kind: str, vid: str, request: str, hooks: str | None,
                 max_attempts: int, priority: int, ts: float) -> pw.Insert:
        """The INSERT of a WAITING job: built once (peewee building it was 13 % of an API node's CPU at
        200 submits/s, py-spy, bench/RESULTS-service.md)."""
        return self.t.Job.insert(job_id=job_id, uid=uid, kind=kind, vid=vid, request=request, hooks=hooks,
                                 status=dbm.WAITING, attempts=0, max_attempts=max_attempts, run_after=0.0,
                                 priority=priority, created_at=ts, updated_at=ts)

    def _replace(self, uid: str, kind: str, vid: str) -> None:
        """Inside a submit's transaction: refuse while the key has an unfinished job, else delete its ended
        ones (the new job overwrites them)."""
        J, R = self.t.Job, self.t.JobResult
        same = (J.uid == uid) & (J.kind == kind) & (J.vid == vid)
        rows = list(self._lock_rows(J.select(J.job_id, J.status).where(same)))
        if any(j.status not in dbm.FINAL for j in rows):
            raise SourceBusy()
        if rows:
            ended = [j.job_id for j in rows]
            R.delete().where(R.job_id.in_(ended)).execute()
            J.delete().where(same & J.job_id.in_(ended)).execute()

    def cancel(self, job_id: str, uid: str | None = None) -> dict[str, Any]:
        """Kill (CONTRACT §7): WAITING/RESCHEDULED/DOING → CANCELLED at once (a DOING job's worker sees it
        and stops decoding); finished jobs raise :class:`CannotCancel`. ``uid`` None = any user."""
        J = self.t.Job
        with self.t.tx():
            q = J.select().where(J.job_id == job_id)
            if uid is not None:
                q = q.where(J.uid == uid)
            job = self._lock_rows(q).first()
            if job is None:
                raise JobNotFound()
            if job.status in dbm.FINAL:
                raise CannotCancel()
            ts = dbm.now()
            J.update(status=dbm.CANCELLED, lease_token=None, lease_until=None, error=CANCELLED_MESSAGE,
                     updated_at=ts).where(J.seq == job.seq).execute()
            queued = self._final_callback(job, None, CANCELLED_MESSAGE)
        for fn in self.cancel_listeners:
            try:
                fn(job_id)
            except Exception:
                log.exception("cancel listener failed")
        if queued:
            self._wake_sender()
        return {"status": dbm.CANCELLED, "created_at": rfc3339(job.created_at), "updated_at": rfc3339(ts)}

    # -- views -----------------------------------------------------------------------------------
    def get(self, job_id: str, uid: str | None = None, kind: str | None = "video") -> dict[str, Any]:
        """``GET /v1/jobs/video/<id>``: ``{id, vid, request, status, result?, error?, created_at, updated_at}``."""
        J = self.t.Job
        q = J.select().where(J.job_id == job_id)
        if uid is not None:
            q = q.where(J.uid == uid)
        if kind is not None:
            q = q.where(J.kind == kind)
        job = q.first()
        if job is None:
            raise JobNotFound()
        view: dict[str, Any] = {"id": job.job_id, "vid": job.vid, "request": _loads(job.request),
                                "status": job.status}
        if job.status == dbm.FINISHED:
            row = self.t.JobResult.get_or_none(self.t.JobResult.job_id == job_id)
            if row is not None:
                view["result"] = _loads(row.result)
                if verdict.overall(view["result"]) is not None:  # CONTRACT §14
                    view["suggestion"] = verdict.overall(view["result"])
        if job.error and job.status in (dbm.FAILED, dbm.CANCELLED, dbm.RESCHEDULED):
            view["error"] = job.error
        live = _live_state(job.live) if job.status == dbm.DOING else None
        if live is not None:  # issue 12: while a live job runs
            view["live"] = live_view(live)
        view["created_at"] = rfc3339(job.created_at)
        view["updated_at"] = rfc3339(job.updated_at)
        return view

    def list(self, uid: str | None = None, status: str | None = None, marker: str | None = None,
             limit: int = 100, kind: str | None = "video") -> list[dict[str, Any]]:
        """``GET /v1/jobs/video?status=``: oldest first; ``marker`` = the last id of the previous page."""
        J = self.t.Job
        q = J.select(J.job_id, J.status, J.created_at, J.updated_at).order_by(J.seq).limit(limit)
        if uid is not None:
            q = q.where(J.uid == uid)
        if kind is not None:
            q = q.where(J.kind == kind)
        if status is not None:
            q = q.where(J.status == status)
        if marker:
            mq = J.select(J.seq).where(J.job_id == marker)
            if uid is not None:
                mq = mq.where(J.uid == uid)
            row = mq.first()
            if row is None:
                raise InvalidRequest(detail="unknown marker")
            q = q.where(J.seq > row.seq)
        return [{"id": j.job_id, "status": j.status, "created_at": rfc3339(j.created_at),
                 "updated_at": rfc3339(j.updated_at)} for j in q]

    def live_states(self) -> list[LiveState]:
        """The last reported connection of every running live job (``/metrics``, all processes)."""
        J = self.t.Job
        rows = J.select(J.live).where((J.status == dbm.DOING) & J.live.is_null(False))
        return [st for st in (_live_state(r.live) for r in rows) if st is not None]

    def counts(self, kind: str | None = None) -> dict[str, int]:
        """Jobs (of ``kind``, or all) by status (every status present, zeros included)."""
        J = self.t.Job
        out = {s: 0 for s in dbm.STATUSES}
        q = J.select(J.status, pw.fn.COUNT(J.seq)).group_by(J.status)
        if kind is not None:
            q = q.where(J.kind == kind)
        for status, n in q.tuples():
            out[status] = n
        return out

    def latest(self, uid: str, kind: str, vid: str) -> Record | None:
        """The newest job of (uid, kind, vid) with its result: an abstract task by its source (CONTRACT §12)."""
        J = self.t.Job
        job = (J.select().where((J.uid == uid) & (J.kind == kind) & (J.vid == vid))
               .order_by(J.seq.desc()).first())
        return None if job is None else self._record(job)

    def record(self, job_id: str) -> Record | None:
        """One job with its result, by id."""
        job = self.t.Job.get_or_none(self.t.Job.job_id == job_id)
        return None if job is None else self._record(job)

    def _record(self, job: Any, result: dict[str, Any] | None = None) -> Record:
        if result is None and job.status == dbm.FINISHED:
            row = self.t.JobResult.get_or_none(self.t.JobResult.job_id == job.job_id)
            result = None if row is None else _loads(row.result)
        return Record(job.job_id, job.uid, job.kind, job.vid, _loads(job.request), job.status, job.error,
                      job.percent, job.duration_ms, job.created_at, job.started_at, job.updated_at, result)

    # -- worker side -----------------------------------------------------------------------------
    def claim(self, owner: str, n: int, kinds: Sequence[str] = ("video", "vframe"),
              lease_seconds: float | None = None) -> list[Lease]:
        """Lease up to ``n`` runnable jobs, highest priority first, then oldest (the list is in that order).
        Expired leases are swept first.

        First one read, without the write lock: is a lease expired, is anything runnable (idle workers poll
        often, and an empty queue must not take the write lock). Then, where the database has ``RETURNING``,
        one statement: ``WITH picked AS MATERIALIZED (SELECT seq … ORDER BY priority DESC, seq LIMIT n [FOR
        UPDATE SKIP LOCKED]) UPDATE argus_job SET … WHERE seq IN (SELECT seq FROM picked) RETURNING …``.
        The CTE is materialized because PostgreSQL may run a plain ``IN (SELECT … LIMIT n FOR UPDATE SKIP
        LOCKED)`` as a nested loop and lease more than ``n`` rows under concurrency. Each row's token is one
        random prefix per claim plus the row's ``seq``: every lease has its own unguessable token, and a new
        claim of the same row a new one. Both statements are built once (:class:`Prepared`).

        Measured (bench/bench_claims.py, bench/RESULTS-service.md): SQLite batch 1 from ~300 to >1,000
        claims/s; the two-step claim it replaced ran a SELECT and one UPDATE per row.
        """
        if n <= 0:
            return []
        lease = self.s.lease_seconds if lease_seconds is None else lease_seconds
        kinds = tuple(kinds)
        expired, runnable = self._stmt(("due", kinds), self._due, kinds).execute(ts=dbm.now()).fetchone()
        if expired is not None:
            self._sweep()  # what it puts back is runnable now, whatever the read said
        elif runnable is None:
            return []
        prefix = secrets.token_hex(_TOKEN_BYTES) + "-"
        with self.t.tx():
            ts = dbm.now()
            values = dict(ts=ts, prefix=prefix, owner=owner[:128], until=ts + lease)
            if self.t.caps.returning:
                rows = self._stmt(("claim", kinds), self._claim_returning, kinds).execute(n=n, **values).fetchall()
            else:  # no RETURNING (SQLite < 3.35): read the rows, then the same UPDATE by their seqs
                picked = self._picked(kinds, ts, n).select(*self._leased_cols()).tuples()
                rows = [(*r[:-2], r[-2] + 1, r[-1]) for r in picked]  # attempts as the UPDATE leaves them
                self._take(**values).where(self.t.Job.seq.in_([r[0] for r in rows])).execute()
        rows.sort(key=lambda r: (-r[1], r[0]))  # RETURNING has no order
        return [Lease(job_id, prefix + str(seq), uid, kind, vid, _loads(request), attempts, lease,
                      resume_ms=resume_point(live))
                for seq, _, job_id, uid, kind, vid, request, attempts, live in rows]

    # -- the claim's and the sweep's statements: queries of their slots, built once each by _stmt --------
    def _stmt(self, key: Any, build: Callable[..., pw.Query], *args: Any) -> Prepared:
        """The prepared statement ``key``: ``build(*args, **slots)`` on first use, each slot that ``build``
        names filled with its stand-in from :data:`_STANDINS`."""
        st = self._prepared.get(key)
        if st is None:
            slots = {k: v for k, v in _STANDINS.items() if k in inspect.signature(build).parameters}
            st = self._prepared[key] = Prepared(self.t.db, functools.partial(build, *args), **slots)
        return st

    def _runnable_rows(self, kinds: tuple[str, ...], ts: float) -> pw.Select:
        J = self.t.Job
        return J.select(J.seq).where(J.status.in_(dbm.RUNNABLE) & J.kind.in_(list(kinds)) & (J.run_after <= ts))

    def _runnable(self, kinds: tuple[str, ...], ts: float) -> pw.Select:
        return self._runnable_rows(kinds, ts).limit(1)

    def _picked(self, kinds: tuple[str, ...], ts: float, n: int) -> pw.Select:
        J = self.t.Job
        return self._lock_rows(self._runnable_rows(kinds, ts).order_by(J.priority.desc(), J.seq).limit(n),
                               skip_locked=True)

    def _take(self, ts: float, prefix: str, owner: str, until: float) -> pw.ModelUpdate:
        J = self.t.Job
        return J.update(status=dbm.DOING, attempts=J.attempts + 1,
                        lease_token=pw.Value(prefix).concat(pw.Cast(J.seq, "TEXT")),
                        lease_owner=owner, lease_until=until, updated_at=ts,
                        started_at=pw.fn.COALESCE(J.started_at, ts))

    def _leased_cols(self) -> tuple[pw.Field, ...]:
        J = self.t.Job
        return (J.seq, J.priority, J.job_id, J.uid, J.kind, J.vid, J.request, J.attempts, J.live)

    def _claim_returning(self, kinds: tuple[str, ...], ts: float, n: int, prefix: str, owner: str,
                         until: float) -> pw.ModelUpdate:
        J = self.t.Job
        cte = self._picked(kinds, ts, n).cte("picked", materialized=True)
        return (self._take(ts, prefix, owner, until).with_cte(cte).where(J.seq.in_(cte.select(cte.c.seq)))
                .returning(*self._leased_cols()))

    def _expired(self, ts: float) -> pw.Select:
        J = self.t.Job
        return J.select(J.seq).where((J.status == dbm.DOING) & (J.lease_until < ts)).limit(1)

    def _due(self, kinds: tuple[str, ...], ts: float) -> pw.Select:
        """One row: (an expired lease's seq or NULL, a runnable job's seq or NULL) — two pre-checks, one
        round trip (a PostgreSQL round trip on loopback is ~0.26 ms, bench/RESULTS-service.md)."""
        return pw.Select(columns=[self._expired(ts), self._runnable(kinds, ts)]).bind(self.t.db)

    def touch(self, job_id: str, token: str, lease_seconds: float | None = None) -> bool:
        """Extend a lease (heartbeat). False when the caller no longer holds it."""
        lease = self.s.lease_seconds if lease_seconds is None else lease_seconds
        J = self.t.Job
        ts = dbm.now()
        with self.t.tx():
            n = (J.update(lease_until=ts + lease)
                 .where((J.job_id == job_id) & (J.lease_token == token) & (J.status == dbm.DOING)).execute())
        return bool(n)

    def lost(self, leases: Iterable[tuple[str, str]]) -> set[str]:
        """Of the given ``(job_id, token)`` pairs, the job ids whose lease is gone (killed, expired and
        re-claimed, ...). A cheap read, polled often so a kill stops decoding quickly."""
        pairs = dict(leases)
        if not pairs:
            return set()
        J = self.t.Job
        alive = {j.job_id for j in J.select(J.job_id, J.lease_token, J.status)
                 .where(J.job_id.in_(list(pairs))) if j.status == dbm.DOING and j.lease_token == pairs[j.job_id]}
        return set(pairs) - alive

    def record_segment(self, job_id: str, token: str, op: str, index: int, segment: dict[str, Any]) -> bool:
        """A segment closed: enqueue its ``hookURL_segment`` callback. False when the lease is lost."""
        with self.t.tx():
            job = self._leased(job_id, token)
            if job is None:
                return False
            url = self._hooks(job).segment.get(op)
            queued = self._enqueue(job_id, cb.segment_msg_id(job_id, op, index), url,
                                   cb.segment_body(job.vid, op, segment))
        if queued:
            self._wake_sender()
        return True

    def record_op(self, job_id: str, token: str, op: str, result: dict[str, Any]) -> bool:
        """An op finished: enqueue its ``hookURL`` callback. False when the lease is lost."""
        with self.t.tx():
            job = self._leased(job_id, token)
            if job is None:
                return False
            url = self._hooks(job).op.get(op)
            queued = self._enqueue(job_id, cb.op_msg_id(job_id, op), url, cb.op_body(job.vid, op, result))
        if queued:
            self._wake_sender()
        return True

    def record_callback(self, job_id: str, token: str, msg_id: str, url: str, body: dict[str, Any]) -> bool:
        """Enqueue an arbitrary callback of a leased job (the vframe task's begin/cuts/end)."""
        with self.t.tx():
            if self._leased(job_id, token) is None:
                return False
            queued = outbox.enqueue(self.t, job_id, f"{job_id}.{msg_id}", url, body,
                                    chain=f"{job_id} {token}", window=self.s.callback_window)
        if queued:
            self._wake_sender()
        return True

    def record_progress(self, job_id: str, token: str, percent: int, duration_ms: int | None = None,
                        live: LiveState | None = None) -> bool:
        """A running job's progress (0–100) and, once known, its media's length; for a live job, its
        connection (issue 12). The stored percent never goes down (CONTRACT §12: monotonic, across retries
        too). False when the lease is lost."""
        J = self.t.Job
        pct = max(0, min(100, int(percent)))
        values: dict[Any, Any] = {J.percent: pw.Case(None, [(J.percent < pct, pct)], J.percent)}
        if duration_ms is not None:
            values[J.duration_ms] = int(duration_ms)
        if live is not None:
            values[J.live] = msgspec.json.encode(live).decode()
        with self.t.tx():
            n = (J.update(values)
                 .where((J.job_id == job_id) & (J.lease_token == token) & (J.status == dbm.DOING)).execute())
        return bool(n)

    def finish(self, job_id: str, token: str, result: dict[str, Any] | None = None,
               error: str | None = None, retryable: bool = False) -> bool:
        """End a leased job: FINISHED with ``result``, or FAILED with ``error`` (RESCHEDULED instead when
        ``retryable`` and attempts remain). Writes the final callback. False when the lease is lost."""
        J = self.t.Job
        queued = False
        with self.t.tx():
            job = self._leased(job_id, token)
            if job is None:
                return False
            ts = dbm.now()
            common = dict(lease_token=None, lease_until=None, updated_at=ts)
            if error is None:
                self._stmt("result", self._store_result).execute(job_id=job_id, result=_dumps(result or {}))
                self._stmt("finished", self._finished).execute(seq=job.seq, ts=ts)
                queued = self._final_callback(job, result or {}, None)
            elif retryable and job.attempts < job.max_attempts:
                J.update(status=dbm.RESCHEDULED, error=error, run_after=ts + self.s.retry_delay,
                         **common).where(J.seq == job.seq).execute()
            else:
                J.update(status=dbm.FAILED, error=error, **common).where(J.seq == job.seq).execute()
                queued = self._final_callback(job, result, error)
        if queued:
            self._wake_sender()
        return True

    # finish's common path, built once: peewee building its SQL was a third of the job threads' GIL time in
    # a server finishing ~150 no-op jobs/s (py-spy --gil, bench/RESULTS-service.md)
    def _store_result(self, job_id: str, result: str) -> pw.Insert:
        R = self.t.JobResult
        return R.insert(job_id=job_id, result=result).on_conflict(  # an upsert on both databases
            conflict_target=[R.job_id], update={R.result: result})

    def _finished(self, seq: int, ts: float) -> pw.ModelUpdate:
        J = self.t.Job
        return J.update(status=dbm.FINISHED, error=None, percent=100, lease_token=None, lease_until=None,
                        updated_at=ts).where(J.seq == seq)

    def release(self, job_id: str, token: str) -> bool:
        """Give a lease back without charging an attempt (graceful shutdown): the job is RESCHEDULED."""
        J = self.t.Job
        with self.t.tx():
            n = (J.update(status=dbm.RESCHEDULED, lease_token=None, lease_until=None, run_after=0.0,
                          attempts=J.attempts - 1, updated_at=dbm.now())
                 .where((J.job_id == job_id) & (J.lease_token == token) & (J.status == dbm.DOING)).execute())
        return bool(n)

    def sweep(self) -> int:
        """Expired leases: back to RESCHEDULED, or FAILED (with its final callback) when the attempts are
        spent. Returns the number of jobs changed. Any process may run it; rows are locked, so at most one
        sweeper changes a given job."""
        if self._stmt("expired", self._expired).execute(ts=dbm.now()).fetchone() is None:
            return 0  # the usual case, answered without a write transaction
        return self._sweep()

    def _sweep(self) -> int:
        """:meth:`sweep` once a read found expired leases."""
        J = self.t.Job
        changed = 0
        queued = False
        with self.t.tx():
            ts = dbm.now()
            q = J.select().where((J.status == dbm.DOING) & (J.lease_until < ts)).order_by(J.seq).limit(500)
            for job in self._lock_rows(q, skip_locked=True):
                common = dict(lease_token=None, lease_until=None, updated_at=ts)
                cond = (J.seq == job.seq) & (J.status == dbm.DOING) & (J.lease_token == job.lease_token)
                if job.attempts >= job.max_attempts:
                    n = J.update(status=dbm.FAILED, error=LEASE_EXHAUSTED, **common).where(cond).execute()
                    if n:
                        queued |= self._final_callback(job, None, LEASE_EXHAUSTED)
                else:
                    n = J.update(status=dbm.RESCHEDULED, run_after=0.0, **common).where(cond).execute()
                if n:
                    log.info("lease expired", extra={"job": job.job_id, "attempts": job.attempts})
                changed += n
        if queued:
            self._wake_sender()
        return changed
