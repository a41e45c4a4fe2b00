"""Queue claims/s: the one-statement ``JobQueue.claim`` against the two-step claim it replaced, same run.

    .venv/bin/python bench/bench_claims.py --jobs 2000 --rounds 3                    # SQLite only
    .venv/bin/python bench/bench_claims.py --jobs 2000 --rounds 3 --pg postgresql://argus@127.0.0.1:55497/argus_test
    .venv/bin/python bench/bench_claims.py --batches 1,8 --json /tmp/claims.json

Each *trial* is one variant on a fresh queue: ``--jobs`` WAITING jobs (rows copied from one real ``submit``,
not timed), then one process calls ``claim(owner, batch)`` until the queue is empty, on the clock. Figures:
claim calls/s and jobs leased/s (equal at batch 1), and the per-call p50/p99. SQLite: a fresh file in a
temp directory per trial (WAL, as ``open_database`` opens it). PostgreSQL (``--pg URL``): a database
``argus_bench_claims_<pid>`` created next to the URL's, its tables dropped and created per trial, the
database dropped at the end. Nothing starts a PostgreSQL server: without ``--pg`` only SQLite runs.

Variants, interleaved round by round (A B, then B A, …) so that drifting machine load hits both alike:

- ``two-step`` — **the baseline**: :func:`two_step_claim`, a copy of ``JobQueue.claim`` as it was before the
  one-statement claim (commit 35eda34): sweep, the runnable pre-check, then ``SELECT`` the candidate rows and
  one ``UPDATE`` per row, in one write transaction.
- ``one-statement`` — today's :meth:`argus_http.queue.database.JobQueue.claim`.

The report gives each trial, the median per variant, and the ratio of medians (one-statement ÷ two-step).
Checks in every trial: every job leased exactly once, every token distinct, every row DOING at the end.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for p in (str(REPO), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

import peewee as pw  # noqa: E402

from argus_http.queue import tables as dbm  # noqa: E402
from argus_http.queue.database import JobQueue, _loads  # noqa: E402
from argus_http.queue.protocol import Lease  # noqa: E402
from bench_service import PgServer, _job_body, _open_queue, machine_note, ms_summary  # noqa: E402

KINDS = ("video", "vframe")


# ===================================================================================================
# BASELINE: the claim before the one-statement rewrite, copied (commit 35eda34, argus_http/queue/database.py).
# Kept here only to be measured against; the queue no longer has it.
# ===================================================================================================
def two_step_claim(q: JobQueue, owner: str, n: int, kinds: Sequence[str] = KINDS,
                   lease_seconds: float | None = None) -> list[Lease]:
    """BASELINE (old code, not the queue's): SELECT the candidates, then one UPDATE per row."""
    if n <= 0:
        return []
    lease = q.s.lease_seconds if lease_seconds is None else lease_seconds
    q.sweep()
    J = q.t.Job
    out: list[Lease] = []
    if not J.select(J.seq).where(J.status.in_(dbm.RUNNABLE) & (J.run_after <= dbm.now())
                                 & J.kind.in_(list(kinds))).limit(1).exists():
        return out
    with q.t.tx():
        ts = dbm.now()
        sel = (J.select().where(J.status.in_(dbm.RUNNABLE) & (J.run_after <= ts) & J.kind.in_(list(kinds)))
               .order_by(J.priority.desc(), J.seq).limit(n))
        for job in q._lock_rows(sel, skip_locked=True):
            token = secrets.token_hex(16)
            changed = (J.update(status=dbm.DOING, attempts=J.attempts + 1, lease_token=token,
                                lease_owner=owner[:128], lease_until=ts + lease, updated_at=ts,
                                started_at=pw.fn.COALESCE(J.started_at, ts))
                       .where((J.seq == job.seq) & J.status.in_(dbm.RUNNABLE)).execute())
            if changed:
                out.append(Lease(job.job_id, token, job.uid, job.kind, job.vid, _loads(job.request),
                                 job.attempts + 1, lease))
    return out


def one_statement_claim(q: JobQueue, owner: str, n: int, kinds: Sequence[str] = KINDS) -> list[Lease]:
    """Today's claim."""
    return q.claim(owner, n, kinds)


VARIANTS: dict[str, Callable[..., list[Lease]]] = {"two-step": two_step_claim, "one-statement": one_statement_claim}
BASELINE, CANDIDATE = "two-step", "one-statement"


# ===================================================================================================
# one trial
# ===================================================================================================
def fill(q: JobQueue, n_jobs: int) -> None:
    """``n_jobs`` WAITING rows: one real submit, then copies of its row (fresh ids) in bulk."""
    J = q.t.Job
    q.submit("bench", _job_body())
    (template,) = J.select().dicts()
    template.pop("seq")
    rows = [{**template, "job_id": secrets.token_hex(12)} for _ in range(n_jobs - 1)]
    with q.t.tx():
        for i in range(0, len(rows), 200):
            J.insert_many(rows[i:i + 200]).execute()


def trial(url: str, data_dir: str, variant: str, batch: int, n_jobs: int, budget_s: float = 120.0) -> dict[str, Any]:
    """Fill a fresh queue, then claim it empty with ``variant``; figures and checks of that one run."""
    tables, q = _open_queue(url, data_dir)
    try:
        if tables.caps.for_update:  # PostgreSQL: the same database every trial, so fresh tables
            tables.db.drop_tables(tables.models, safe=True)
        tables.create()
        fill(q, n_jobs)
        claim = VARIANTS[variant]
        owner = f"bench-{variant}"
        lat: list[float] = []
        leases: list[Lease] = []
        deadline = time.monotonic() + budget_s
        t0 = time.perf_counter()
        while time.monotonic() < deadline:
            c0 = time.perf_counter()
            got = claim(q, owner, batch)
            lat.append(time.perf_counter() - c0)
            if not got:
                break
            leases.extend(got)
        wall = time.perf_counter() - t0
        calls = len(lat) - (1 if lat and len(leases) == n_jobs else 0)  # the final empty call is not a claim
        ids = [l.job_id for l in leases]
        doing = q.counts()[dbm.DOING]
        return {"variant": variant, "batch": batch, "jobs": n_jobs, "wall_s": round(wall, 4),
                "calls_s": round(calls / wall, 1), "jobs_s": round(len(leases) / wall, 1),
                "call": ms_summary(lat[:calls]),
                "checks": {"leased": len(leases), "unique_jobs": len(set(ids)),
                           "unique_tokens": len({l.token for l in leases}), "doing": doing,
                           "ok": len(leases) == len(set(ids)) == len({l.token for l in leases}) == doing == n_jobs}}
    finally:
        tables.close()


def run_backend(backend: str, url_for: Callable[[int], str], data_dir: str, batches: list[int], rounds: int,
                n_jobs: int) -> list[dict[str, Any]]:
    """Every batch size × round, the variants interleaved (the order flips each round)."""
    rows: list[dict[str, Any]] = []
    k = 0
    for batch in batches:
        for r in range(rounds):
            order = [BASELINE, CANDIDATE] if r % 2 == 0 else [CANDIDATE, BASELINE]
            for variant in order:
                res = trial(url_for(k), data_dir, variant, batch, n_jobs)
                k += 1
                res.update(backend=backend, round=r + 1, loadavg=machine_note()["loadavg_1_5_15"])
                rows.append(res)
                print(fmt_trial(res), flush=True)
    return rows


# ===================================================================================================
# report
# ===================================================================================================
def fmt_trial(r: dict[str, Any]) -> str:
    c = r["call"]
    return (f"{r['backend']:<6} batch {r['batch']:>2} round {r['round']} {r['variant']:<13} "
            f"calls/s {r['calls_s']:>8.1f}  jobs/s {r['jobs_s']:>8.1f}  call p50/p99 ms "
            f"{c.get('p50_ms', float('nan')):.3f}/{c.get('p99_ms', float('nan')):.3f}  "
            f"checks {'ok' if r['checks']['ok'] else r['checks']}  load {' '.join(r['loadavg'])}")


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Median per (backend, batch, variant) and the ratio of medians."""
    out = []
    for backend in dict.fromkeys(r["backend"] for r in rows):
        for batch in dict.fromkeys(r["batch"] for r in rows if r["backend"] == backend):
            med: dict[str, dict[str, float]] = {}
            for v in VARIANTS:
                sel = [r for r in rows if (r["backend"], r["batch"], r["variant"]) == (backend, batch, v)]
                med[v] = {"calls_s": statistics.median(r["calls_s"] for r in sel),
                          "jobs_s": statistics.median(r["jobs_s"] for r in sel),
                          "p50_ms": statistics.median(r["call"]["p50_ms"] for r in sel),
                          "p99_ms": statistics.median(r["call"]["p99_ms"] for r in sel)}
            out.append({"backend": backend, "batch": batch, "median": med,
                        "ratio_jobs_s": round(med[CANDIDATE]["jobs_s"] / med[BASELINE]["jobs_s"], 2),
                        "all_checks_ok": all(r["checks"]["ok"] for r in rows
                                             if (r["backend"], r["batch"]) == (backend, batch))})
    return out


def fmt_summary(summary: list[dict[str, Any]]) -> list[str]:
    lines = ["| backend | batch | two-step jobs/s (p50 / p99 ms per call) | one-statement jobs/s (p50 / p99 ms) "
             "| ratio of medians | checks |", "|---|---:|---:|---:|---:|:-:|"]
    for s in summary:
        b, c = s["median"][BASELINE], s["median"][CANDIDATE]
        lines.append(f"| {s['backend']} | {s['batch']} | {b['jobs_s']:.0f} ({b['p50_ms']:.2f} / {b['p99_ms']:.2f}) "
                     f"| {c['jobs_s']:.0f} ({c['p50_ms']:.2f} / {c['p99_ms']:.2f}) | {s['ratio_jobs_s']:.2f}× "
                     f"| {'ok' if s['all_checks_ok'] else 'FAILED'} |")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=2000, help="jobs per trial (default 2000)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per batch size (default 3)")
    ap.add_argument("--batches", default="1,8", help="claim sizes n (default 1,8)")
    ap.add_argument("--pg", default="", help="a PostgreSQL URL; its server gets a scratch database")
    ap.add_argument("--json", dest="json_out", help="write every trial and the summary to this file")
    a = ap.parse_args(argv)
    batches = [int(x) for x in a.batches.split(",") if x]
    report: dict[str, Any] = {"argv": sys.argv, "machine_before": machine_note(), "trials": []}
    tmp = Path(tempfile.mkdtemp(prefix="argus-bench-claims-"))
    try:
        report["trials"] += run_backend("sqlite", lambda k: f"sqlite:///{tmp / f'queue-{k}.db'}", str(tmp),
                                        batches, a.rounds, a.jobs)
        if a.pg:
            pg = PgServer()
            pg.url = a.pg
            name = f"argus_bench_claims_{int(time.time())}"
            url = pg.fresh_db(name)
            try:
                report["trials"] += run_backend("pg", lambda k: url, str(tmp), batches, a.rounds, a.jobs)
            finally:
                pg.drop_db(name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report["machine_after"] = machine_note()
    report["summary"] = summarise(report["trials"])
    print(f"\nload before {' '.join(report['machine_before']['loadavg_1_5_15'])}, "
          f"after {' '.join(report['machine_after']['loadavg_1_5_15'])}")
    print("\n".join(fmt_summary(report["summary"])))
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
