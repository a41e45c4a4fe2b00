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
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
            self.proc.kill()
            self.proc.wait(10)

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
