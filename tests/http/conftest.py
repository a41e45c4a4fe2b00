"""Shared fixtures of the service tests: real videos (PyAV), a real callback receiver on loopback, a real
waitress server on an ephemeral port, and one real Engine per session."""

from __future__ import annotations

import http.client
import json
import os
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
sys.path.insert(0, str(HERE))  # fake_engine, for service-layer tests and worker subprocesses

from argus_http.config import load_settings  # noqa: E402
from argus_http.server import Server  # noqa: E402

PG_URL = os.environ.get("ARGUS_TEST_PG_URL", "")


# -- videos --------------------------------------------------------------------------------------------------
def make_video(path: Path, seconds: float, fps: int = 10, size: tuple[int, int] = (96, 64), gop: int = 10) -> Path:
    """An H.264 (or MPEG-4) video whose colour changes every second, written with PyAV."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height = size
        s.pix_fmt = "yuv420p"
        s.codec_context.gop_size = gop
        if codec == "libx264":
            s.options = {"preset": "ultrafast", "tune": "zerolatency"}
        w, h = size
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(int(seconds * fps)):
            sec = i // fps
            img = np.empty((h, w, 3), np.uint8)
            img[..., 0] = (xx * 3 + sec * 40) % 256
            img[..., 1] = (yy * 5 + sec * 70) % 256
            img[..., 2] = (sec * 90) % 256
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def short_video(media_dir: Path) -> Path:
    return make_video(media_dir / "short.mp4", 4)


@pytest.fixture(scope="session")
def long_video(media_dir: Path) -> Path:
    """Long enough that analysing it every 0.1 s takes several seconds (kill tests)."""
    return make_video(media_dir / "long.mp4", 90, fps=5, size=(64, 48), gop=50)


# -- the real engine ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from argus_core import Engine
    from argus_http.net.egress import EgressProxy
    from argus_http.net.ssrf import Guard

    # As `argus serve` runs it: FFmpeg fetches http(s) sources through the SSRF-checking proxy (the
    # settings below allow 127.0.0.1). Face galleries under a temporary folder, never the user's home.
    egress = EgressProxy(Guard(FAST["ssrf_allow"]))
    egress.start()
    eng = Engine(decoders=1, workers=1, options={"data_dir": str(tmp_path_factory.mktemp("engine-data"))},
                 source_options={"http_proxy": egress.url})
    eng.egress = egress  # type: ignore[attr-defined]  # tests read its refusal count
    try:
        yield eng
    finally:
        eng.close()
        egress.close()


# -- callback receiver ----------------------------------------------------------------------------------------
class Received:
    def __init__(self, path: str, headers: dict[str, str], body: bytes) -> None:
        self.path, self.headers, self.body = path, headers, body
        self.at = time.monotonic()

    def json(self) -> Any:
        return json.loads(self.body)


class Receiver:
    """A real HTTP server on 127.0.0.1 that records POSTs. ``status_for(path, n)`` picks each answer
    (n = how many times that path was hit before); ``delay`` stalls every answer."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.hits: dict[str, int] = {}
        self.status_for: Callable[[str, int], int] = lambda path, n: 200
        self.delay = 0.0
        self.cond = threading.Condition()
        self.port = 0
        self._srv: ThreadingHTTPServer | None = None
        self.start()

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                if outer.delay:
                    time.sleep(outer.delay)
                with outer.cond:
                    count = outer.hits.get(self.path, 0)
                    outer.hits[self.path] = count + 1
                    status = outer.status_for(self.path, count)
                    if 200 <= status < 300:
                        outer.requests.append(Received(self.path, dict(self.headers), body))
                    outer.cond.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST

        ThreadingHTTPServer.allow_reuse_address = True
        self._srv = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._srv.daemon_threads = True
        self.port = self._srv.server_address[1]
        threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def stop(self) -> None:
        if self._srv is not None:
            self._srv.shutdown()
            self._srv.server_close()
            self._srv = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, pred: Callable[[list[Received]], bool], timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while not pred(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver: condition not met in {timeout} s; got "
                                         f"{[(r.path, r.body[:120]) for r in self.requests]}")
                self.cond.wait(left)
            return list(self.requests)

    def on(self, path: str) -> list[Received]:
        with self.cond:
            return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.stop()


# -- the service ---------------------------------------------------------------------------------------------
class Client:
    """Plain http.client calls against a running server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None,
             headers: dict[str, str] | None = None, timeout: float = 60) -> tuple[int, dict[str, str], Any]:
        hdrs = dict(headers or {})
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            hdrs.setdefault("Content-Type", "application/json")
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            rh = {k.lower(): v for k, v in resp.getheaders()}
        finally:
            conn.close()
        if rh.get("content-type", "").startswith("application/json") and payload:
            return resp.status, rh, json.loads(payload)
        return resp.status, rh, payload.decode("utf-8", "replace")

    def wait_status(self, job_id: str, statuses: set[str], timeout: float = 30, kind: str = "video") -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st, _, job = self.call("GET", f"/v1/jobs/{kind}/{job_id}")
            assert st == 200, job
            if job["status"] in statuses:
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} still {job['status']} after {timeout} s")
            time.sleep(0.05)


FAST = {
    "port": 0, "ssrf_allow": ["127.0.0.1/32"], "callback_schedule": [0.2, 0.4, 0.8], "callback_jitter": 0.1,
    "callback_poll": 0.1, "poll_interval": 0.1, "cancel_poll": 0.1, "sweep_interval": 0.2, "retry_delay": 0.1,
    "log_level": "warning",
}


def settings_for(tmp: Path, **overrides: Any):
    return load_settings(env={}, overrides={**FAST, "data_dir": str(tmp / "data"), **overrides})


@contextmanager
def running_server(tmp: Path, engine: Any, **overrides: Any) -> Iterator[tuple[Server, Client]]:
    """A real waitress server on an ephemeral loopback port, serving from a thread."""
    srv = Server(settings_for(tmp, **overrides), engine).start()
    t = threading.Thread(target=srv.serve, daemon=True)
    t.start()
    try:
        yield srv, Client(srv.port)
    finally:
        srv.close()
        t.join(5)
        srv.tables.close()


def video_body(uri: str, **params: Any) -> dict[str, Any]:
    ops = params.pop("ops", [{"op": "pulp"}])
    return {"data": {"uri": uri}, "params": params, "ops": ops}
