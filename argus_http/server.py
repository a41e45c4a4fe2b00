"""``argus serve`` and ``argus worker``: wiring the pieces into processes.

``argus serve`` runs the HTTP API on waitress, the callback sender, the lease sweeper and (with an engine)
an in-process runner for async jobs. ``argus worker`` runs only a runner, attached to the same database
(``--database-url``) or to a server's queue API (``--queue-url``); a worker attached to the database also
sends callbacks and sweeps, so any one surviving process keeps the system moving.

Both stop cleanly on SIGTERM/SIGINT: no new claims, running jobs are stopped and their leases given back
(RESCHEDULED, no attempt spent), pending callbacks stay in the outbox for the next start.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import signal
import sys
import threading
from typing import Any, Sequence

from . import logs
from .app import Service, create_app
from .edge import WORKER_BODY_LIMIT
from .config import Settings, parse_cli
from .delivery.sender import Sender
from .jobs.runner import Runner
from .metrics import Metrics
from .net.egress import EgressProxy, drop_no_proxy
from .net.ssrf import Guard
from .queue.database import JobQueue
from .queue.remote import RemoteQueue
from .queue.tables import Tables, open_database
from .save import FrameStore
from .wsgi_errors import use_json_errors

log = logging.getLogger("argus.server")


def make_engine(settings: Settings, egress: EgressProxy | None = None) -> Any:
    """Build the engine named by ``settings.engine`` (``module:callable``) with the settings it accepts.

    ``egress``: a started proxy that FFmpeg must fetch http(s) sources through (SSRF guard on every hop)."""
    module, _, attr = settings.engine.partition(":")
    factory = getattr(importlib.import_module(module), attr or "Engine")
    wanted = {"decoders": settings.decoders, "workers": settings.inference_workers,
              "source_options": {**({"http_proxy": egress.url} if egress is not None else {}),
                                 # nested HLS files stay below the media root too (issue 10)
                                 **({"argus_media_root": settings.media_root} if settings.media_root else {}),
                                 "argus_max_download": str(settings.max_download)},
              "models_dir": settings.models_dir, "max_interval": settings.max_interval,
              "max_frames": settings.max_frames, "max_duration": settings.max_duration,
              # face galleries live in the service's data directory
              "options": {"data_dir": str(settings.data_dir), **settings.op_options}}
    try:
        params = inspect.signature(factory).parameters
        accepts_all = any(p.kind is p.VAR_KEYWORD for p in params.values())
        kwargs = {k: v for k, v in wanted.items() if v is not None and (accepts_all or k in params)}
    except (TypeError, ValueError):
        kwargs = {}
    return factory(**kwargs)


class Sweeper:
    """Periodically returns expired leases to the queue (or fails them when attempts are spent)."""

    def __init__(self, queue: JobQueue, interval: float) -> None:
        self.queue, self.interval = queue, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="argus-sweeper", daemon=True)

    def start(self) -> "Sweeper":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.queue.sweep()
            except Exception:
                log.exception("sweep failed")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class Server:
    """An in-process service: ``start()`` binds the port (``port`` tells which), ``serve()`` blocks,
    ``close()`` stops everything. Tests run it on a thread with port 0."""

    def __init__(self, settings: Settings, engine: Any = None, *, run_jobs: bool = True) -> None:
        self.s = settings
        self.engine = engine
        self.metrics = Metrics()
        self.guard = Guard(settings.ssrf_allow)
        self.tables = Tables(open_database(settings.database_url))
        self.tables.create()
        self.queue = JobQueue(self.tables, settings)
        self.store = FrameStore(settings.save_store)
        self.sender = Sender(self.tables, settings, self.guard, self.metrics) if settings.run_sender else None
        if self.sender is not None:
            self.queue.outbox_listeners.append(self.sender.wake)
        self.sweeper = Sweeper(self.queue, settings.sweep_interval) if settings.run_sender else None
        self.runner: Runner | None = None
        if engine is not None and run_jobs:
            self.runner = Runner(engine, self.queue, settings, self.guard, metrics=self.metrics, store=self.store)
            self.queue.cancel_listeners.append(self.runner.cancel)
        self.service = Service(settings, self.tables, self.queue, engine, guard=self.guard, metrics=self.metrics,
                               store=self.store, on_submit=self.runner.wake if self.runner else None)
        self.app = create_app(self.service)
        self._http: Any = None
        self.port: int | None = None
        self._closing = threading.Event()
        self._served = threading.Event()

    def start(self) -> "Server":
        import waitress

        if self.sender is not None:
            self.sender.start()
        if self.sweeper is not None:
            self.sweeper.start()
        if self.runner is not None:
            self.runner.start()
        self._http = waitress.create_server(
            self.app, host=self.s.host, port=self.s.port, threads=self.s.threads, ident="argus",
            # refuse a Content-Length over the largest route limit before reading the body (issue 10);
            # the Gate applies each route's own limit, and waitress's errors answer JSON (wsgi_errors)
            max_request_body_size=max(self.s.max_body, WORKER_BODY_LIMIT), clear_untrusted_proxy_headers=True,
            channel_timeout=120,
        )
        use_json_errors(self._http)
        self.port = self._http.effective_port
        log.info("listening", extra={"url": f"http://{self.s.host}:{self.port}", "database":
                                     self.s.database_url.split("@")[-1]})
        return self

    def serve(self) -> None:
        """Serve until :meth:`close` (from any thread). waitress' own ``run()`` cannot be stopped from
        another thread safely, so we drive its loop one poll at a time and close it on this thread."""
        http = self._http
        try:
            while not self._closing.is_set():
                try:
                    http.asyncore.loop(timeout=0.5, map=http._map, use_poll=http.adj.asyncore_use_poll, count=1)
                except OSError:
                    # A client socket that died between poll() and its handler; waitress drops it itself.
                    log.exception("http loop error")
                    if self._closing.is_set():
                        break
        finally:
            http.close()
            http.task_dispatcher.shutdown(timeout=5)
            self._served.set()

    def close(self) -> None:
        if self.runner is not None:
            self.runner.stop()
        if self._http is not None and not self._closing.is_set():
            self._closing.set()
            try:
                self._http.pull_trigger()  # wake the poll so serve() sees the flag now
            except OSError:
                pass
            self._served.wait(10)
        if self.sweeper is not None:
            self.sweeper.stop()
        if self.sender is not None:
            self.sender.stop()


def _on_signals(stop: Any) -> None:
    def handler(signum: int, frame: Any) -> None:
        log.info("signal received; stopping", extra={"signal": signum})
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _cli_settings(argv: Sequence[str], prog: str, description: str) -> Settings | None:
    """Settings from the command line (logging set up), or None after printing why they are bad."""
    try:
        settings = parse_cli(argv, prog, description)
    except ValueError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    logs.setup(settings.log_level)
    return settings


def start_engine(settings: Settings, guard: Guard | None = None) -> tuple[Any, EgressProxy]:
    """The engine, and the egress proxy its decoders fetch http(s) sources through (started)."""
    egress = EgressProxy(guard or Guard(settings.ssrf_allow), max_bytes=settings.max_download)
    egress.start()
    drop_no_proxy()
    try:
        return make_engine(settings, egress), egress
    except BaseException:
        egress.close()
        raise


def main_serve(argv: Sequence[str]) -> int:
    """``argus serve [flags]``: the HTTP API plus an in-process runner."""
    settings = _cli_settings(argv, "argus serve", "Run the Argus HTTP API (and async jobs) on waitress.")
    if settings is None:
        return 2
    egress = engine = None
    if settings.engine:
        engine, egress = start_engine(settings)
    server = Server(settings, engine, run_jobs=settings.jobs > 0).start()
    # The port line on stdout lets scripts (and tests) use --port 0.
    print(f"argus: listening on http://{settings.host}:{server.port}", flush=True)
    stopping = threading.Event()

    def stop() -> None:
        if stopping.is_set():
            return
        stopping.set()
        threading.Thread(target=server.close, daemon=True).start()

    _on_signals(stop)
    try:
        server.serve()
    finally:
        server.close()
        if engine is not None and hasattr(engine, "close"):
            engine.close()
        if egress is not None:
            egress.close()
    return 0


def main_worker(argv: Sequence[str]) -> int:
    """``argus worker [flags]``: run async jobs from a shared database or a remote queue API."""
    settings = _cli_settings(argv, "argus worker", "Run Argus async jobs from a shared queue.")
    if settings is None:
        return 2
    metrics = Metrics()
    guard = Guard(settings.ssrf_allow)
    sender = sweeper = None
    if settings.queue_url:
        backend: Any = RemoteQueue(settings.queue_url, settings.access_key, settings.secret_key)
    else:
        tables = Tables(open_database(settings.database_url))
        tables.create()
        backend = JobQueue(tables, settings)
        if settings.run_sender:
            sender = Sender(tables, settings, guard, metrics).start()
            backend.outbox_listeners.append(sender.wake)
            sweeper = Sweeper(backend, settings.sweep_interval).start()
    engine, egress = start_engine(settings, guard)
    runner = Runner(engine, backend, settings, guard, metrics=metrics, store=FrameStore(settings.save_store)).start()
    print("argus: worker running", flush=True)
    done = threading.Event()
    _on_signals(done.set)
    try:
        while not done.wait(1.0):
            pass
    finally:
        runner.stop()
        for part in (sweeper, sender):
            if part is not None:
                part.stop()
        if hasattr(engine, "close"):
            engine.close()
        egress.close()
    return 0


if __name__ == "__main__":  # python -m argus_http.server serve|worker ...
    cmd, rest = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("serve", [])
    sys.exit(main_worker(rest) if cmd == "worker" else main_serve(rest))
