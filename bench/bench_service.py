"""Service throughput: async submit latency under open-loop load, and job-queue lease operations/s.

    .venv/bin/python bench/bench_service.py                      # everything, prints a report + JSON
    .venv/bin/python bench/bench_service.py --part submit --rates 50,200 --seconds 10
    .venv/bin/python bench/bench_service.py --part submit --submit-db pg     # the served queue on PostgreSQL
    .venv/bin/python bench/bench_service.py --part queue --jobs 1000 --backends sqlite,pg --procs 1,2
    .venv/bin/pytest bench/bench_service.py --benchmark-enable   # the same, as pytest-benchmark tests

(``pytest bench`` alone does not collect this file: the suite's pattern is ``test_*.py``; name it explicitly.)

**Submit latency.** A real ``argus serve`` subprocess (``python -m argus_http.cli serve``) on 127.0.0.1, port 0,
a fresh data directory (SQLite, WAL) and default HTTP settings (8 waitress threads, JSON logs at ``info`` to a
file). Two server set-ups:

- ``api``   — ``--engine ""``: an API-only server (no engine, no in-process runner). The async path of
  ``POST /v1/video/<id>`` only validates and inserts a WAITING row, so this isolates submit itself.
- ``noop``  — ``--engine bench_service:NullEngine`` with the default ``--jobs 2``: the in-process runner claims
  every job as soon as it is submitted and finishes it at once (no decoding), so submit competes with
  claim/finish write transactions on the same SQLite file, as on a server whose workers keep up.

The load generator is open-loop: request *i* is due at ``t0 + i / rate`` whatever happened before; a pool of
threads, each with one keep-alive ``http.client`` connection, sends due requests; latency is measured from
the *due* time to the end of the response, so it includes any queueing when the server (or the client pool)
falls behind. ``--submit-db pg``: the server's queue is a fresh database on the PostgreSQL server described
below instead of the data dir's SQLite file. Every phase is bounded (``rate * seconds`` requests, a hard
deadline). Bodies name a ``file://`` URI below the media root (no network, no DNS) and carry no hook URLs. Afterwards the benchmark
checks every accepted job id is unique and present in the database.

**Queue lease operations/s.** :class:`argus_http.queue.database.JobQueue` called directly (no HTTP) on SQLite (a
fresh file in a temp dir) and PostgreSQL (``ARGUS_TEST_PG_URL``, else a throwaway cluster started with
``scripts/ci-postgres.sh`` on port 55491 and stopped afterwards; each run gets a fresh database
``argus_bench_*``, dropped afterwards). ``N`` jobs are enqueued (``submit``), then, in 1 or 2 competing
processes:

- phased: everyone claims (``claim(owner, 1)``) until the queue is empty, barrier, touches its own leases,
  barrier, finishes its own leases → claim/s, touch/s, finish/s (total ops / phase wall time);
- cycle: a worker's loop, claim → touch → finish one job at a time until empty → cycles/s.

Checks: no job claimed twice, every job claimed once, every job FINISHED at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import os
import queue as _queue
import re
import resource
import secrets
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

OPS = ["pulp"]
PG_PORT = int(os.environ.get("ARGUS_BENCH_PG_PORT", "55491"))


# ===================================================================================================
# The no-op engine (``--engine bench_service:NullEngine``): same surface as argus_core.Engine, no work.
# ===================================================================================================
class _NullJob:
    def __init__(self, job_id: str, ops: list[str]) -> None:
        self.id = job_id
        self._ops = ops

    def events(self, timeout: float | None = None):
        from argus_core.events import JobFinished
        from argus_core.result import OpResult

        yield JobFinished(self.id, {op: OpResult() for op in self._ops}, frames=0)

    def cancel(self) -> None:
        pass

    def result(self, timeout: float | None = None) -> dict:
        return {op: {"labels": [], "segments": []} for op in self._ops}


class NullEngine:
    """Accepts every known op and finishes each job at once with an empty result."""

    def __init__(self, **_: Any) -> None:
        pass

    def known_ops(self) -> set[str]:
        return {"pulp", "terror", "image_label", "detection", "ocr"}

    def check(self, req: Any) -> None:
        """No op has parameters of its own to check (the server calls this on every parsed request)."""

    def submit(self, body: Any, job_id: str | None = None, start_ms: int = 0) -> _NullJob:
        ops = [o.get("op") for o in (body.get("ops") or []) if isinstance(o, dict)] or ["pulp"]
        return _NullJob(job_id or secrets.token_hex(12), ops)

    def analyze(self, body: Any) -> dict:
        return self.submit(body).result()

    def close(self) -> None:
        pass


# ===================================================================================================
# helpers
# ===================================================================================================
def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(-(-q * len(sorted_values) // 100)) - 1))
    return sorted_values[k]


def ms_summary(seconds: list[float]) -> dict[str, float]:
    s = sorted(x * 1000.0 for x in seconds)
    if not s:
        return {"n": 0}
    return {"n": len(s), "p50_ms": round(pct(s, 50), 3), "p90_ms": round(pct(s, 90), 3),
            "p99_ms": round(pct(s, 99), 3), "max_ms": round(s[-1], 3), "mean_ms": round(statistics.fmean(s), 3)}


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all threads) from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def self_cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def machine_note() -> dict[str, Any]:
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {"cpus": os.cpu_count(), "loadavg_1_5_15": load, "python": sys.version.split()[0]}


# ===================================================================================================
# 1. submit latency against a real ``argus serve``
# ===================================================================================================
class ServeProcess:
    """``argus serve`` (``python -m argus_http.cli serve``) on 127.0.0.1:0 in its own data directory."""

    def __init__(self, workdir: Path, mode: str = "api", extra_args: list[str] | None = None,
                 start_timeout: float = 60.0, database_url: str = "") -> None:
        self.workdir = workdir
        self.mode = mode
        self.data_dir = workdir / "data"
        #: the queue's database: the data dir's SQLite file unless a URL is given (``--submit-db pg``)
        self.database_url = database_url or f"sqlite:///{self.data_dir / 'argus.db'}"
        self.media_dir = workdir / "media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.video_uri = (self.media_dir / "clip.mp4").as_uri()  # never opened on the submit path
        self.log_path = workdir / "serve.log.jsonl"
        args = [sys.executable, "-m", "argus_http.cli", "serve", "--host", "127.0.0.1", "--port", "0",
                "--data-dir", str(self.data_dir), "--media-root", str(self.media_dir)]
        if mode == "api":
            args += ["--engine", ""]
        elif mode == "noop":
            args += ["--engine", "bench_service:NullEngine"]
        else:
            raise ValueError(f"unknown server mode {mode!r}")
        if database_url:
            args += ["--database-url", database_url]
        args += list(extra_args or [])
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARGUS_")}
        env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        self.cmd = args
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(args, cwd=str(REPO), env=env, stdout=subprocess.PIPE, stderr=self._log)
        self.port = self._read_port(start_timeout)

    def _read_port(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        buf = b""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    break
                buf += chunk
                m = re.search(rb"listening on http://127\.0\.0\.1:(\d+)", buf)
                if m:
                    return int(m.group(1))
        self.stop()
        raise RuntimeError(f"argus serve did not start: {buf!r}; log: {self.log_path}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()

    def _db(self) -> Any:
        from argus_http.queue.tables import Tables, open_database

        return Tables(open_database(self.database_url))

    def db_job_ids(self) -> list[str]:
        t = self._db()
        try:
            return [r[0] for r in t.Job.select(t.Job.job_id).tuples()]
        finally:
            t.close()

    def db_status_counts(self) -> dict[str, int]:
        from peewee import fn

        t = self._db()
        try:
            return dict(t.Job.select(t.Job.status, fn.COUNT(t.Job.seq)).group_by(t.Job.status).tuples())
        finally:
            t.close()

    def server_ms(self, since_line: int) -> tuple[list[float], int]:
        """Handler times (``ms`` of the ``request`` log lines for the video route) after line ``since_line``."""
        out: list[float] = []
        lines = self.log_path.read_bytes().splitlines()
        for raw in lines[since_line:]:
            if b'"msg":"request"' not in raw or b"/v1/video/" not in raw:
                continue
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if rec.get("method") == "POST" and rec.get("ms") is not None:
                out.append(float(rec["ms"]) / 1000.0)
        return out, len(lines)

    def log_lines(self) -> int:
        return len(self.log_path.read_bytes().splitlines())


def submit_body(uri: str) -> bytes:
    return json.dumps({"data": {"uri": uri}, "params": {"async": True, "vframe": {"mode": 0, "interval": 1}},
                       "ops": [{"op": op} for op in OPS]}).encode()


class _Conn:
    """One keep-alive connection (reopened after any error)."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.c: http.client.HTTPConnection | None = None

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self.c is None:
            self.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            self.c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
            resp = self.c.getresponse()
            data = resp.read()
            if resp.will_close:
                self.close()
            return resp.status, data
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        if self.c is not None:
            try:
                self.c.close()
            finally:
                self.c = None


def open_loop(port: int, uri: str, rate: float, seconds: float, *, conns: int = 32, tag: str = "",
              timeout: float = 10.0, grace: float = 30.0, server_pid: int | None = None) -> dict[str, Any]:
    """Send ``rate * seconds`` async submits on a fixed schedule; latency from each request's due time."""
    n = max(1, int(round(rate * seconds)))
    body = submit_body(uri)
    tag = tag or f"r{int(rate)}-{secrets.token_hex(3)}"
    work: _queue.Queue = _queue.Queue()
    lock = threading.Lock()
    rec: list[tuple[float, float, float, int]] = []  # (due, sent, done, status)
    errors: dict[str, int] = {}
    job_ids: list[str] = []
    inflight = [0, 0]  # current, max
    t0 = time.perf_counter() + 0.2
    hard_deadline = t0 + seconds + grace

    def worker() -> None:
        conn = _Conn(port, timeout)
        try:
            while True:
                try:
                    item = work.get(timeout=max(0.1, hard_deadline - time.perf_counter()))
                except _queue.Empty:
                    return
                if item is None:
                    return
                i, due = item
                sent = time.perf_counter()
                if sent > hard_deadline:
                    with lock:
                        errors["abandoned (past deadline)"] = errors.get("abandoned (past deadline)", 0) + 1
                    continue
                with lock:
                    inflight[0] += 1
                    inflight[1] = max(inflight[1], inflight[0])
                try:
                    status, data = conn.post(f"/v1/video/{tag}-{i}", body)
                    done = time.perf_counter()
                    err = None
                    if status != 200:
                        err = f"HTTP {status}"
                    else:
                        try:
                            jid = json.loads(data)["job"]
                        except (ValueError, KeyError, TypeError):
                            err, jid = "bad body", None
                except Exception as exc:  # timeouts, resets
                    done, status, err, jid = time.perf_counter(), 0, type(exc).__name__, None
                with lock:
                    inflight[0] -= 1
                    rec.append((due, sent, done, 200 if err is None else -1))
                    if err is None:
                        job_ids.append(jid)
                    else:
                        errors[err] = errors.get(err, 0) + 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, name=f"load-{k}", daemon=True) for k in range(conns)]
    for t in threads:
        t.start()
    cpu_client0 = self_cpu_seconds()
    cpu_server0 = proc_cpu_seconds(server_pid) if server_pid else float("nan")
    unsent = 0
    for i in range(n):  # the dispatcher: puts request i on the queue at its due time
        due = t0 + i / rate
        now = time.perf_counter()
        if now > hard_deadline:
            unsent = n - i
            break
        if due > now:
            time.sleep(due - now)
        work.put((i, due))
    for _ in threads:
        work.put(None)
    for t in threads:
        t.join(max(0.1, hard_deadline + timeout - time.perf_counter()))
    cpu_client = self_cpu_seconds() - cpu_client0
    cpu_server = (proc_cpu_seconds(server_pid) - cpu_server0) if server_pid else float("nan")
    with lock:
        done_rec = list(rec)
        ids = list(job_ids)
        errs = dict(errors)
    if unsent:
        errs["not sent (past deadline)"] = unsent
    ok = [r for r in done_rec if r[3] == 200]
    end = max((r[2] for r in done_rec), default=t0)
    first_sent = min((r[1] for r in done_rec), default=t0)
    last_sent = max((r[1] for r in done_rec), default=t0)
    out = {
        "rate_target": rate, "seconds": seconds, "requests": n, "ok": len(ok),
        "errors": sum(errs.values()),
        "error_kinds": errs,
        "latency": ms_summary([r[2] - r[0] for r in ok]),           # due → done (open-loop latency)
        "service": ms_summary([r[2] - r[1] for r in ok]),           # sent → done
        "send_lag": ms_summary([r[1] - r[0] for r in done_rec]),    # due → sent (client pool behind?)
        # the offered rate as actually sent, and completions over the whole phase (t0 → last response)
        "sent_rate": round((len(done_rec) - 1) / (last_sent - first_sent), 1) if len(done_rec) > 1 and last_sent > first_sent else None,
        "achieved_rate": round(len(ok) / (end - t0), 1) if end > t0 else None,
        "max_inflight": inflight[1], "conns": conns,
        "client_cpu_ms_per_req": round(cpu_client * 1000 / max(1, len(done_rec)), 3),
        "server_cpu_ms_per_req": round(cpu_server * 1000 / max(1, len(done_rec)), 3) if server_pid else None,
        "server_cpu_util": round(cpu_server / max(1e-9, end - t0), 3) if server_pid else None,
        "job_ids": ids,
    }
    return out


def warm_up(port: int, uri: str, n: int = 40, conns: int = 32) -> None:
    """Open the connections the load pool will use and warm the server's thread-local DB connections."""
    res = open_loop(port, uri, rate=200.0, seconds=n / 200.0, conns=conns, tag="warmup", grace=20)
    if res["errors"]:
        raise RuntimeError(f"warm-up failed: {res['error_kinds']}")


def run_submit(mode: str, rates: list[float], seconds: float, conns: int = 32,
               workdir: Path | None = None, database_url: str = "") -> dict[str, Any]:
    """Start ``argus serve`` in ``mode``, run one open-loop phase per rate, check the jobs, stop it."""
    own = workdir is None
    wd = Path(tempfile.mkdtemp(prefix=f"argus-bench-serve-{mode}-")) if own else workdir
    srv = ServeProcess(wd, mode, database_url=database_url)
    phases = []
    try:
        warm_up(srv.port, srv.video_uri, conns=conns)
        time.sleep(1.0)
        for rate in rates:
            line0 = srv.log_lines()
            res = open_loop(srv.port, srv.video_uri, rate, seconds, conns=conns, server_pid=srv.pid)
            time.sleep(0.5)
            handler, _ = srv.server_ms(line0)
            res["server_handler"] = ms_summary(handler)
            stored = set(srv.db_job_ids())
            ids = res.pop("job_ids")
            res["ids_unique"] = len(ids) == len(set(ids))
            res["ids_stored"] = sum(1 for j in ids if j in stored)
            res["loadavg_after"] = machine_note()["loadavg_1_5_15"]
            phases.append(res)
            time.sleep(1.0)
        counts = srv.db_status_counts()
    finally:
        srv.stop()
        if own:
            shutil.rmtree(wd, ignore_errors=True)
    return {"mode": mode, "command": " ".join(a if a else '""' for a in srv.cmd), "phases": phases,
            "db_status_counts": counts, "database": srv.database_url.split("@")[-1].split("/")[0]}


# ===================================================================================================
# 2. queue lease operations/s directly against JobQueue
# ===================================================================================================
def _queue_settings(url: str, data_dir: str):
    from argus_http.config import load_settings

    # Long leases: nothing may expire between the phases of a run.
    return load_settings(env={}, overrides={"data_dir": data_dir, "database_url": url, "lease_seconds": 600.0,
                                            "log_level": "warning"})


def _open_queue(url: str, data_dir: str):
    from argus_http.queue.tables import Tables, open_database
    from argus_http.queue.database import JobQueue

    tables = Tables(open_database(url))
    return tables, JobQueue(tables, _queue_settings(url, data_dir))


def _job_body() -> dict[str, Any]:
    return {"data": {"uri": "file:///media/clip.mp4"}, "params": {"async": True, "vframe": {"mode": 0, "interval": 1}},
            "ops": [{"op": op} for op in OPS]}


def _lease_proc(url: str, data_dir: str, mode: str, idx: int, n_jobs: int, barrier: Any, out: Any,
                budget_s: float) -> None:
    """One competing process: phased (claim all / touch own / finish own) or cycle (claim→touch→finish)."""
    res: dict[str, Any] = {"idx": idx, "pid": os.getpid(), "error": None}
    try:
        tables, q = _open_queue(url, data_dir)
        owner = f"bench-{idx}-{os.getpid()}"
        deadline = time.monotonic() + budget_s
        max_iter = 2 * n_jobs + 20
        lat: dict[str, list[float]] = {"claim": [], "touch": [], "finish": [], "claim_empty": []}
        span: dict[str, tuple[float, float]] = {}
        claimed: list[tuple[str, str]] = []
        q.counts()  # connect before the clock starts
        barrier.wait(timeout=120)
        if mode == "phased":
            t0 = time.monotonic()
            empties = 0
            for _ in range(max_iter):
                if time.monotonic() > deadline:
                    res["error"] = "claim phase over budget"
                    break
                a = time.perf_counter()
                leases = q.claim(owner, 1)
                dt = time.perf_counter() - a
                if not leases:
                    lat["claim_empty"].append(dt)
                    empties += 1
                    if empties >= 3:
                        break
                    continue
                empties = 0
                lat["claim"].append(dt)
                claimed.extend((le.job_id, le.token) for le in leases)
            span["claim"] = (t0, time.monotonic())
            barrier.wait(timeout=300)
            t0 = time.monotonic()
            for job_id, token in claimed:
                if time.monotonic() > deadline:
                    res["error"] = "touch phase over budget"
                    break
                a = time.perf_counter()
                ok = q.touch(job_id, token)
                lat["touch"].append(time.perf_counter() - a)
                if not ok:
                    res["error"] = f"touch refused for {job_id}"
            span["touch"] = (t0, time.monotonic())
            barrier.wait(timeout=300)
            t0 = time.monotonic()
            for job_id, token in claimed:
                if time.monotonic() > deadline:
                    res["error"] = "finish phase over budget"
                    break
                a = time.perf_counter()
                ok = q.finish(job_id, token, result={op: {"labels": [], "segments": []} for op in OPS})
                lat["finish"].append(time.perf_counter() - a)
                if not ok:
                    res["error"] = f"finish refused for {job_id}"
            span["finish"] = (t0, time.monotonic())
        else:  # cycle
            t0 = time.monotonic()
            empties = 0
            for _ in range(max_iter):
                if time.monotonic() > deadline:
                    res["error"] = "cycle over budget"
                    break
                a = time.perf_counter()
                leases = q.claim(owner, 1)
                b = time.perf_counter()
                if not leases:
                    lat["claim_empty"].append(b - a)
                    empties += 1
                    if empties >= 3:
                        break
                    continue
                empties = 0
                lat["claim"].append(b - a)
                le = leases[0]
                claimed.append((le.job_id, le.token))
                ok1 = q.touch(le.job_id, le.token)
                c = time.perf_counter()
                ok2 = q.finish(le.job_id, le.token, result={op: {"labels": [], "segments": []} for op in OPS})
                d = time.perf_counter()
                lat["touch"].append(c - b)
                lat["finish"].append(d - c)
                if not (ok1 and ok2):
                    res["error"] = f"lease refused for {le.job_id}"
            span["cycle"] = (t0, time.monotonic())
        res.update(lat=lat, span=span, claimed=[j for j, _ in claimed])
        tables.close()
    except Exception as exc:  # reported to the parent, never hangs it
        res["error"] = f"{type(exc).__name__}: {exc}"
        try:
            barrier.abort()
        except Exception:
            pass
    out.put(res)


def _lease_run(url: str, data_dir: str, mode: str, procs: int, n_jobs: int, budget_s: float) -> dict[str, Any]:
    """Enqueue ``n_jobs`` into a fresh database, run ``procs`` competing processes, check, summarise."""
    tables, q = _open_queue(url, data_dir)
    tables.create()
    body = _job_body()
    t_enq: list[float] = []
    for i in range(n_jobs):
        a = time.perf_counter()
        q.submit("", body, vid=f"bench-{i}")
        t_enq.append(time.perf_counter() - a)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(procs)
    out = ctx.Queue()
    ps = [ctx.Process(target=_lease_proc, args=(url, data_dir, mode, k, n_jobs, barrier, out, budget_s),
                      daemon=True) for k in range(procs)]
    for p in ps:
        p.start()
    results = []
    deadline = time.monotonic() + budget_s + 150
    while len(results) < procs and time.monotonic() < deadline:
        try:
            results.append(out.get(timeout=1.0))
        except _queue.Empty:
            if all(not p.is_alive() for p in ps) and out.empty():
                break
    for p in ps:
        p.join(5)
        if p.is_alive():
            p.kill()
    errors = [r["error"] for r in results if r.get("error")]
    if len(results) < procs:
        errors.append(f"only {len(results)} of {procs} processes reported")
    all_claimed = [j for r in results for j in r.get("claimed", [])]
    counts = q.counts()
    tables.close()
    summary: dict[str, Any] = {
        "mode": mode, "procs": procs, "jobs": n_jobs, "errors": errors,
        "enqueue_ops_s": round(n_jobs / sum(t_enq), 1), "enqueue": ms_summary(t_enq),
        "claimed_total": len(all_claimed), "claimed_twice": len(all_claimed) - len(set(all_claimed)),
        "finished": counts.get("FINISHED", 0),
        "per_proc_claims": [len(r.get("claimed", [])) for r in results],
    }
    for op in ("claim", "touch", "finish", "claim_empty"):
        summary[op] = ms_summary([x for r in results for x in r.get("lat", {}).get(op, [])])
    spans = [r.get("span", {}) for r in results]
    if mode == "phased":
        for op in ("claim", "touch", "finish"):
            ss = [s[op] for s in spans if op in s]
            n_ops = summary[op]["n"]
            if ss and n_ops:
                wall = max(e for _, e in ss) - min(b for b, _ in ss)
                summary[f"{op}_ops_s"] = round(n_ops / wall, 1)
    else:
        ss = [s["cycle"] for s in spans if "cycle" in s]
        if ss and summary["claim"]["n"]:
            wall = max(e for _, e in ss) - min(b for b, _ in ss)
            summary["cycles_s"] = round(summary["claim"]["n"] / wall, 1)
            summary["lease_ops_s"] = round(3 * summary["claim"]["n"] / wall, 1)
    return summary


# -- PostgreSQL: a URL from the environment or our own throwaway cluster; a fresh database per run ------
class PgServer:
    def __init__(self) -> None:
        self.url = os.environ.get("ARGUS_TEST_PG_URL", "")
        self.started = False
        self.env = {**os.environ, "ARGUS_PG_PORT": str(PG_PORT), "ARGUS_PG_DIR": f"/tmp/argus-bench-pg-{PG_PORT}",
                    "ARGUS_PG_DB": "argus_bench"}

    def start(self) -> str:
        if not self.url:
            r = subprocess.run(["bash", str(REPO / "scripts" / "ci-postgres.sh")], env=self.env, cwd=str(REPO),
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"ci-postgres.sh failed: {r.stderr[-2000:]}")
            self.url = r.stdout.strip().splitlines()[-1]
            self.started = True
        return self.url

    def stop(self) -> None:
        if self.started:
            subprocess.run(["bash", str(REPO / "scripts" / "ci-postgres.sh"), "stop"], env=self.env, cwd=str(REPO),
                           capture_output=True, text=True, timeout=120)
            self.started = False

    def fresh_db(self, name: str) -> str:
        import psycopg2

        con = psycopg2.connect(self.url)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            con.close()
        p = urlsplit(self.url)
        return urlunsplit((p.scheme, p.netloc, "/" + name, p.query, p.fragment))

    def drop_db(self, name: str) -> None:
        import psycopg2

        con = psycopg2.connect(self.url)
        con.autocommit = True
        try:
            with con.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            con.close()


def run_lease(backend: str, mode: str, procs: int, n_jobs: int, pg: PgServer | None = None,
              budget_s: float = 240.0) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="argus-bench-queue-"))
    name = f"argus_bench_{os.getpid()}_{mode}_{procs}"
    try:
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'queue.db'}"
        else:
            assert pg is not None
            url = pg.fresh_db(name)
        res = _lease_run(url, str(tmp), mode, procs, n_jobs, budget_s)
        res["backend"] = backend
        res["url"] = url.split("@")[-1] if backend == "pg" else "sqlite:///<tmp>/queue.db"
        return res
    finally:
        if backend == "pg" and pg is not None:
            try:
                pg.drop_db(name)
            except Exception:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


# ===================================================================================================
# report
# ===================================================================================================
def fmt_submit(res: dict[str, Any]) -> list[str]:
    lines = [f"server mode {res['mode']}: {res['command']}",
             "  rate  sent/s  ok/s   p50 ms   p90 ms   p99 ms   max ms  handler p50/p99 ms  send-lag p99  "
             "srv CPU ms/req  srv util  errors"]
    for p in res["phases"]:
        L, H, S = p["latency"], p["server_handler"], p["send_lag"]
        lines.append(f"  {p['rate_target']:>4.0f}  {p['sent_rate'] or 0:>6.1f}  {p['achieved_rate'] or 0:>5.1f}"
                     f"  {L.get('p50_ms', float('nan')):>7.2f}  {L.get('p90_ms', float('nan')):>7.2f}"
                     f"  {L.get('p99_ms', float('nan')):>7.2f}  {L.get('max_ms', float('nan')):>7.2f}"
                     f"  {H.get('p50_ms', float('nan')):>7.2f}/{H.get('p99_ms', float('nan')):<8.2f}"
                     f"  {S.get('p99_ms', float('nan')):>10.2f}  {p['server_cpu_ms_per_req']:>14.2f}"
                     f"  {p['server_cpu_util']:>8.2f}  {p['errors']} {p['error_kinds'] or ''}"
                     f"  (ok {p['ok']}/{p['requests']}, stored {p['ids_stored']}, unique {p['ids_unique']},"
                     f" max in-flight {p['max_inflight']}/{p['conns']})")
    return lines


def fmt_lease(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["backend procs mode    jobs  enqueue/s  claim/s  touch/s  finish/s  cycles/s  "
             "claim p50/p99 ms  touch p50/p99  finish p50/p99  twice  finished  errors"]
    for r in rows:
        def pp(op: str) -> str:
            s = r[op]
            return f"{s.get('p50_ms', float('nan')):.2f}/{s.get('p99_ms', float('nan')):.2f}"
        lines.append(f"{r['backend']:<7} {r['procs']:>5} {r['mode']:<7} {r['jobs']:>5}  {r['enqueue_ops_s']:>9.1f}"
                     f"  {r.get('claim_ops_s', '-'):>7}  {r.get('touch_ops_s', '-'):>7}  {r.get('finish_ops_s', '-'):>8}"
                     f"  {r.get('cycles_s', '-'):>8}  {pp('claim'):>16}  {pp('touch'):>13}  {pp('finish'):>14}"
                     f"  {r['claimed_twice']:>5}  {r['finished']:>8}  {r['errors'] or ''}"
                     f"  per-proc claims {r['per_proc_claims']}")
    return lines


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("all", "submit", "queue"), default="all")
    ap.add_argument("--rates", default="50,200", help="comma-separated req/s (default 50,200)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per rate (default 10)")
    ap.add_argument("--servers", default="api,noop", help="server modes: api (no engine), noop (NullEngine)")
    ap.add_argument("--submit-db", default="sqlite", choices=("sqlite", "pg"),
                    help="the served queue's database: the data dir's SQLite file, or a fresh PostgreSQL database")
    ap.add_argument("--conns", type=int, default=32, help="keep-alive connections / sender threads (default 32)")
    ap.add_argument("--jobs", type=int, default=1000, help="jobs per lease run (default 1000)")
    ap.add_argument("--backends", default="sqlite,pg")
    ap.add_argument("--procs", default="1,2")
    ap.add_argument("--modes", default="phased,cycle")
    ap.add_argument("--json", dest="json_out", help="write all figures to this file")
    a = ap.parse_args(argv)
    report: dict[str, Any] = {"machine_before": machine_note(), "argv": sys.argv}
    if a.part in ("all", "submit"):
        rates = [float(x) for x in a.rates.split(",") if x]
        report["submit"] = []
        pg = PgServer() if a.submit_db == "pg" else None
        try:
            if pg is not None:
                pg.start()
            for mode in [m for m in a.servers.split(",") if m]:
                name = f"argus_bench_serve_{os.getpid()}_{mode}"
                res = run_submit(mode, rates, a.seconds, conns=a.conns,
                                 database_url=pg.fresh_db(name) if pg is not None else "")
                report["submit"].append(res)
                print("\n".join(fmt_submit(res)), flush=True)
                if pg is not None:
                    pg.drop_db(name)
        finally:
            if pg is not None:
                pg.stop()
    if a.part in ("all", "queue"):
        rows = []
        pg = None
        try:
            for backend in [b for b in a.backends.split(",") if b]:
                if backend == "pg":
                    pg = PgServer()
                    try:
                        pg.start()
                    except Exception as exc:
                        print(f"PostgreSQL unavailable, skipped: {exc}", flush=True)
                        continue
                for procs in [int(x) for x in a.procs.split(",") if x]:
                    for mode in [m for m in a.modes.split(",") if m]:
                        r = run_lease(backend, mode, procs, a.jobs, pg)
                        rows.append(r)
                        print("\n".join(fmt_lease([r])[1:]), flush=True)
        finally:
            if pg is not None:
                pg.stop()
        report["queue"] = rows
        print("\n".join(fmt_lease(rows)), flush=True)
    report["machine_after"] = machine_note()
    if a.json_out:
        Path(a.json_out).write_text(json.dumps(report, indent=2))
    return report


# ===================================================================================================
# pytest-benchmark (``pytest bench/bench_service.py --benchmark-enable``)
# ===================================================================================================
# Defined only under pytest, so the script and the server subprocess (which imports NullEngine from here)
# never import pytest.
if "pytest" in sys.modules:
    import pytest
    _SECONDS = float(os.environ.get("ARGUS_BENCH_SERVICE_SECONDS", "10"))
    _JOBS = int(os.environ.get("ARGUS_BENCH_SERVICE_JOBS", "1000"))

    @pytest.fixture(scope="module", params=["api", "noop"])
    def served(request, tmp_path_factory):
        srv = ServeProcess(tmp_path_factory.mktemp(f"serve-{request.param}"), request.param)
        try:
            warm_up(srv.port, srv.video_uri)
            yield srv
        finally:
            srv.stop()

    @pytest.mark.parametrize("rate", [50, 200])
    def test_submit_latency(benchmark, served, rate):
        """One open-loop phase; pytest-benchmark times the phase, the figures go to extra_info."""
        benchmark.group = f"submit open-loop ({served.mode} server)"
        box: dict[str, Any] = {}
        line0 = served.log_lines()

        def phase():
            box.update(open_loop(served.port, served.video_uri, rate, _SECONDS, server_pid=served.pid))

        benchmark.pedantic(phase, rounds=1, iterations=1)
        time.sleep(0.5)
        handler, _ = served.server_ms(line0)
        ids = box.pop("job_ids")
        stored = set(served.db_job_ids())
        figures = {k: box[k] for k in ("rate_target", "sent_rate", "achieved_rate", "ok", "errors",
                                       "server_cpu_ms_per_req")}
        figures.update({f"latency_{k}": v for k, v in box["latency"].items()})
        figures.update({f"handler_{k}": v for k, v in ms_summary(handler).items()})
        benchmark.extra_info.update(figures)
        print(f"\nsubmit {served.mode} @ {rate}/s: {figures}")
        assert box["errors"] == 0, box["error_kinds"]
        assert len(ids) == len(set(ids)) and all(j in stored for j in ids)

    @pytest.fixture(scope="module")
    def pg_server():
        if not os.environ.get("ARGUS_TEST_PG_URL"):
            pytest.skip("set ARGUS_TEST_PG_URL (url=$(bash scripts/ci-postgres.sh))")
        yield PgServer()

    @pytest.mark.parametrize("mode", ["phased", "cycle"])
    @pytest.mark.parametrize("procs", [1, 2])
    @pytest.mark.parametrize("backend", ["sqlite", "pg"])
    def test_queue_lease_ops(benchmark, request, backend, procs, mode):
        pg = request.getfixturevalue("pg_server") if backend == "pg" else None
        benchmark.group = f"queue lease ops ({backend})"
        box: dict[str, Any] = {}
        benchmark.pedantic(lambda: box.update(run_lease(backend, mode, procs, _JOBS, pg)), rounds=1, iterations=1)
        keep = ("enqueue_ops_s", "claim_ops_s", "touch_ops_s", "finish_ops_s", "cycles_s", "lease_ops_s",
                "claimed_total", "claimed_twice", "finished")
        benchmark.extra_info.update({k: box[k] for k in keep if k in box})
        print("\n" + "\n".join(fmt_lease([box])))
        assert not box["errors"], box["errors"]
        assert box["claimed_twice"] == 0 and box["claimed_total"] == _JOBS and box["finished"] == _JOBS


if __name__ == "__main__":
    main()
