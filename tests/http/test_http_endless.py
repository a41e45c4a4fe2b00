"""Issue 10: an endless source is bounded by frames, bytes and time — the egress proxy cuts a connection at
``max_download``, and the decoder stops at ``max_duration`` of media time (``max_frames``: test_hardening)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path
from typing import Iterator

import pytest

from argus_core.errors import ArgusError
from argus_core.media.source import open_video
from argus_http.net.egress import EgressProxy
from argus_http.net.ssrf import Guard
from conftest import make_video


class Streamer:
    """Serves one MPEG-TS file as a stream of unknown length (no Content-Length, as a live or looped source
    is) and counts the bytes it really sent."""

    def __init__(self, data: bytes) -> None:
        outer = self
        self.sent = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "video/mp2t")
                self.end_headers()
                try:
                    for i in range(0, len(data), 4096):
                        self.wfile.write(data[i:i + 4096])
                        outer.sent += len(data[i:i + 4096])
                except OSError:
                    pass
                self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/live.ts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def stream(tmp_path_factory) -> Iterator[Streamer]:
    p = make_video(tmp_path_factory.mktemp("endless") / "long.ts", 60, fps=5, size=(64, 48), gop=5)
    s = Streamer(p.read_bytes())
    yield s
    s.close()


def test_egress_cuts_a_connection_at_max_download(stream):
    cap = 64 * 1024
    with EgressProxy(Guard(["127.0.0.1/32"]), max_bytes=cap) as proxy:
        before = stream.sent
        frames = 0
        try:
            container, s = open_video(stream.url, 10, {"http_proxy": proxy.url})
            with container:
                for _ in container.decode(s):
                    frames += 1
        except (ArgusError, OSError):  # the cut ends the stream with an error: as it should
            pass
        assert proxy.capped == 1
        assert frames < 300  # the whole stream is 300 frames
        # what left the origin beyond the cap is only what socket buffers held when the proxy stopped reading
        assert stream.sent - before < cap + 4 * 1024 * 1024


def test_engine_stops_an_endless_source_at_max_duration(stream):
    from argus_core import Engine

    with EgressProxy(Guard(["127.0.0.1/32"])) as proxy, \
            Engine(decoders=1, workers=1, ops=["pulp"], max_duration=4, max_frames=0,
                   source_options={"http_proxy": proxy.url}) as e:
        out = e.analyze({"data": {"uri": stream.url}, "params": {"vframe": {"mode": 0, "interval": 1}},
                         "ops": [{"op": "pulp"}]}, timeout=120)
    offsets = [c["offset"] for seg in out["pulp"]["segments"] for c in seg["cuts"]]
    assert offsets and max(offsets) <= 4000, offsets
