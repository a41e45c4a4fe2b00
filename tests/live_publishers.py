"""Real live publishers on loopback for the live-stream tests (issue 12): the Debian ``ffmpeg`` CLI
publishing a looped clip in real time (``-re``). Every publisher is killed by its fixture's finalizer."""

from __future__ import annotations

import http.server
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg CLI is not installed (Debian package ffmpeg)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kill_publisher(proc: subprocess.Popen | None) -> None:
    """Kill a publisher process if it runs — resumed first, as a SIGSTOPped one (a stall test) must be."""
    if proc is not None and proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGCONT)
        except ProcessLookupError:
            pass
        proc.kill()
        proc.wait(10)


class Publisher:
    """One ``ffmpeg`` process; ``kill``/``stop``/``cont`` inject faults, ``restart`` brings it back."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args, self.log = args, log
        self.proc: subprocess.Popen | None = None
        self.started_at: list[float] = []

    def start(self) -> "Publisher":
        assert FFMPEG is not None
        fh = open(self.log, "ab")
        self.proc = subprocess.Popen([FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", *self.args],
                                     stdout=fh, stderr=fh)
        fh.close()
        self.started_at.append(time.monotonic())
        return self

    def kill(self) -> None:
        kill_publisher(self.proc)

    def stop(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def cont(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.kill()
        self.start()


def looped(clip: Path, *extra_in: str) -> list[str]:
    return ["-re", "-stream_loop", "-1", *extra_in, "-i", str(clip)]


def rtmp_args(clip: Path, port: int, *extra: str) -> tuple[list[str], str]:
    url = f"rtmp://127.0.0.1:{port}/live/x"
    return [*looped(clip), "-c", "copy", *extra, "-f", "flv", "-listen", "1", url], url


def http_ts_args(clip: Path, port: int, *extra: str) -> tuple[list[str], str]:
    url = f"http://127.0.0.1:{port}/live.ts"
    return [*looped(clip), "-c", "copy", *extra, "-f", "mpegts", "-listen", "1", url], url


def hls_args(clip: Path, out: Path, *extra: str) -> list[str]:
    return [*looped(clip), "-c", "copy", *extra, "-f", "hls", "-hls_time", "1", "-hls_list_size", "4",
            "-hls_flags", "delete_segments+discont_start", str(out / "live.m3u8")]


class DirServer:
    """A loopback HTTP server for an HLS directory (quiet, threaded)."""

    def __init__(self, root: Path) -> None:
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(root), **kw)

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def publishers(tmp_path):
    """Make publishers that are always killed at the end of the test."""
    made: list[Publisher] = []

    def make(args: list[str], start: bool = True) -> Publisher:
        p = Publisher(args, tmp_path / f"ffmpeg-{len(made)}.log")
        made.append(p)
        return p.start() if start else p

    yield make
    for p in made:
        p.kill()


@pytest.fixture(scope="session")
def live_clip(tmp_path_factory) -> Path:
    """4 s of real photos (skimage's), 25 fps, a keyframe every second, H.264 with B-frames."""
    from .videos import photo_video

    return photo_video(tmp_path_factory.mktemp("live") / "clip.mp4", per_photo=0.8, gop=25, w=320, h=180)


class Reader:
    """:func:`argus_core.media.live.live_samples` on a thread: the sampled offsets and every live event, for
    source-layer tests that need no engine. Fast backoff (0.5 s, capped at 2 s) keeps reconnect tests short."""

    def __init__(self, source, interval: float = 0.5) -> None:
        from argus_core.media.clock import LiveClock
        from argus_core.media.live import Backoff

        self.source, self.interval = source, interval
        self.offsets: list[int] = []
        self.events: list = []  # Connected / Disconnected / Discontinuity, in order with the samples
        self.clock = LiveClock()
        self._stop = threading.Event()
        self._backoff = Backoff(base=0.5, cap=2.0)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        from argus_core.media.live import Decoded, Frame, live_samples
        from argus_core.request import Sampling

        def on_event(ev) -> None:
            if not isinstance(ev, (Decoded, Frame)):
                self.events.append(ev)

        for s in live_samples(self.source, Sampling(0, self.interval, 0.0, None), self._stop.is_set, self.clock,
                              on_event, self._backoff):
            self.offsets.append(s.offset_ms)

    def of(self, kind: str) -> list:
        return [e for e in self.events if type(e).__name__ == kind]

    def wait(self, pred, timeout: float = 20.0, what: str = "live events") -> None:
        deadline = time.monotonic() + timeout
        while not pred():
            assert self.thread.is_alive(), "the live reader ended"
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self.events}, {self.offsets}"
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self.thread.join(20)


def start_until_running(pub: Publisher, settle: float = 0.7, timeout: float = 15.0) -> None:
    """Start a publisher that pushes to a reader in listen mode, again and again until it stays up: it exits at
    once (connection refused) while the reader is between connections. No probe connection is made — a
    listening RTSP reader would take the probe for its publisher."""
    deadline = time.monotonic() + timeout
    while True:
        pub.start()
        time.sleep(settle)
        assert pub.proc is not None
        if pub.proc.poll() is None:
            return
        assert time.monotonic() < deadline, f"publisher never connected (see {pub.log})"


def rtsp_push_args(clip: Path, port: int) -> tuple[list[str], str]:
    """A publisher pushing RTSP (interleaved TCP) to a reader listening on ``port``: FFmpeg's RTSP muxer has
    no server mode, so the reader takes that role (``rtsp_flags listen``)."""
    url = f"rtsp://127.0.0.1:{port}/live"
    return [*looped(clip), "-c", "copy", "-f", "rtsp", "-rtsp_transport", "tcp", url], url


def srt_args(clip: Path, port: int) -> tuple[list[str], str]:
    """An SRT publisher in listener mode (MPEG-TS payload); the reader calls it."""
    return ([*looped(clip), "-c", "copy", "-f", "mpegts", f"srt://127.0.0.1:{port}?mode=listener"],
            f"srt://127.0.0.1:{port}?mode=caller")


def pyav_has_srt() -> bool:
    """Whether PyAV's own FFmpeg was built with libsrt (the PyPI wheels, FFmpeg 8.1 here, are not; the Debian
    ``ffmpeg`` CLI is). Asked by opening a caller with a short timeout: only a missing protocol is "no"."""
    import av
    import av.error

    try:
        av.open(f"srt://127.0.0.1:{free_port()}?mode=caller&connect_timeout=200", timeout=1).close()
    except av.error.ProtocolNotFoundError:
        return False
    except Exception:
        return True
    return True
