"""The callback outbox: rows written inside the caller's transaction, claimed and settled by the sender.

Delivery is at-least-once: a row is claimed for ``timeout + grace`` seconds; a sender that dies mid-delivery
leaves it to be retried after that. Rows of one ``chain`` go out in order: a row is due only when no older
row of its chain is still pending.
"""

from __future__ import annotations

import random
from typing import Any, Callable, Sequence

import msgspec
import peewee as pw

from ..queue import tables as dbm
from ..queue.tables import Tables


class Delivery(msgspec.Struct, frozen=True):
    """What the sender needs to post one callback."""

    seq: int
    msg_id: str
    url: str
    body: str
    attempts: int


def enqueue(t: Tables, job_id: str, msg_id: str, url: str, body: dict[str, Any], *,
            chain: str, window: float) -> bool:
    """Insert one callback row (call inside the state-change transaction). False if ``msg_id`` exists."""
    ts = dbm.now()
    q = t.Outbox.insert(
        msg_id=msg_id, job_id=job_id, chain=chain, url=url,
        body=msgspec.json.encode(body).decode(), status=dbm.PENDING, attempts=0,
        next_at=ts, created_at=ts, deadline=ts + window,
    ).on_conflict_ignore().as_rowcount()  # rows inserted, not the last rowid: 0 means a duplicate
    return q.execute() == 1


def claim_due(t: Tables, limit: int, hold: float) -> list[Delivery]:
    """Claim up to ``limit`` due rows for ``hold`` seconds and return them, oldest first."""
    O = t.Outbox
    Older = O.alias("older")
    ts = dbm.now()
    older_pending = (Older.select(pw.SQL("1"))
                     .where((Older.chain == O.chain) & (Older.status == dbm.PENDING) & (Older.seq < O.seq)))
    if not O.select(O.seq).where((O.status == dbm.PENDING) & (O.next_at <= ts)).limit(1).exists():
        return []  # nothing due: no write transaction
    with t.tx():
        q = (O.select(O.seq, O.msg_id, O.url, O.body, O.attempts)
             .where((O.status == dbm.PENDING) & (O.next_at <= ts) & ~pw.fn.EXISTS(older_pending))
             .order_by(O.seq).limit(limit))
        if t.caps.for_update:
            q = q.for_update(of=O, skip_locked=t.caps.skip_locked or None)
        rows = list(q)
        if not rows:
            return []
        O.update(next_at=ts + hold).where(O.seq.in_([r.seq for r in rows])).execute()
    return [Delivery(r.seq, r.msg_id, r.url, r.body, r.attempts) for r in rows]


def defer(t: Tables, seqs: Sequence[int], delay: float) -> None:
    """Hand claimed rows back, due again in ``delay`` s, without counting an attempt (their receiver is busy)."""
    if seqs:
        with t.tx():
            t.Outbox.update(next_at=dbm.now() + delay).where(t.Outbox.seq.in_(list(seqs))).execute()


def mark_delivered(t: Tables, seq: int, status: int) -> None:
    with t.tx():
        t.Outbox.update(status=dbm.DELIVERED, last_status=status, delivered_at=dbm.now(),
                        attempts=t.Outbox.attempts + 1, last_error=None).where(t.Outbox.seq == seq).execute()


def mark_gone(t: Tables, seq: int) -> None:
    """410 Gone: the receiver asked us to stop (Standard Webhooks)."""
    with t.tx():
        t.Outbox.update(status=dbm.GONE, last_status=410, attempts=t.Outbox.attempts + 1,
                        last_error="410 Gone").where(t.Outbox.seq == seq).execute()


def backoff(attempt: int, schedule: Sequence[float], jitter: float,
            rand: Callable[[], float] = random.random) -> float:
    """Delay before retry number ``attempt`` (1-based): ``schedule[attempt-1]`` (last repeats) plus up to
    ``jitter`` × that, so retries from many jobs do not arrive in lock-step."""
    base = schedule[min(attempt, len(schedule)) - 1]
    return base * (1.0 + jitter * rand())


def mark_failed(t: Tables, seq: int, status: int | None, error: str, schedule: Sequence[float],
                jitter: float) -> bool:
    """Record a failed attempt and schedule the next; returns False when the row expired instead."""
    O = t.Outbox
    with t.tx():
        row = O.get_or_none(O.seq == seq)
        if row is None or row.status != dbm.PENDING:
            return False
        attempts = row.attempts + 1
        ts = dbm.now()
        nxt = ts + backoff(attempts, schedule, jitter)
        expired = nxt > row.deadline
        O.update(attempts=attempts, last_status=status, last_error=error[:500],
                 next_at=nxt, status=dbm.EXPIRED if expired else dbm.PENDING).where(O.seq == seq).execute()
        return not expired


def stats(t: Tables) -> dict[str, int]:
    """Rows by delivery state, plus the number of failed attempts so far (for /metrics)."""
    O = t.Outbox
    out = {s: 0 for s in (dbm.PENDING, dbm.DELIVERED, dbm.GONE, dbm.EXPIRED)}
    for status, n in O.select(O.status, pw.fn.COUNT(O.seq)).group_by(O.status).tuples():
        out[status] = n
    failed = (O.select(pw.fn.COALESCE(pw.fn.SUM(O.attempts), 0)).where(O.status != dbm.DELIVERED).scalar()
              or 0)
    failed += (O.select(pw.fn.COALESCE(pw.fn.SUM(O.attempts - 1), 0))
               .where(O.status == dbm.DELIVERED).scalar() or 0)
    out["failed_attempts"] = int(failed)
    return out
