"""A live protocol PyAV's own FFmpeg lacks, relayed by the ``ffmpeg`` CLI (issue 12: ``srt://``).

The PyPI wheels of PyAV 18.1 (FFmpeg 8.1) are built without libsrt; Debian's ``ffmpeg`` has it. Rather than
refuse ``srt://`` wherever PyAV was not rebuilt, :class:`CliRelay` runs ``ffmpeg -i <url> -map 0:v -c copy
-f mpegts pipe:1`` — no decoding, only the protocol and a remux — and hands its stdout to PyAV's MPEG-TS
demuxer as a file object, the same way :class:`~.hls.Follower` feeds live HLS. The decode loop, the clock and
the reconnects stay ours: the relay is started per connection, and ends with it.

- The CLI is given only the URL the SSRF guard checked (a pinned IP literal, :func:`~.source.pin_uri`) and
  ``-protocol_whitelist`` of the scheme's own protocols, so it dials nothing else.
- :meth:`start` waits (up to ``open_timeout``) for the first bytes; a CLI that exits first — connection
  refused, no listener — raises :class:`RelayFailed` with the last line of its stderr, which the live loop
  reports and retries with backoff like any failed connect.
- :meth:`read` waits in 50-ms slices: ``stop()`` ends it with ``b""`` at once, and no byte for
  :meth:`CliRelay.silence_s` raises :class:`RelayStalled` (the watchdog a dead publisher needs: over UDP it
  sends no FIN).
- :meth:`close` terminates the CLI (kill after 1 s) and reaps it: no process outlives its connection.
"""

from __future__ import annotations

import functools
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Callable
from urllib.parse import urlsplit

#: how long bytes keep coming through the relay after the publisher stopped (SRT's receive latency, 120 ms by
#: default, and the CLI's demux + remux): a stall is declared this much sooner than the source's read deadline.
#: Measured by bench/bench_live.py (SIGSTOPped SRT publisher): 5.16–5.17 s to detection with the plain 4.5-s
#: deadline, against the issue's 5 s, and still 4.85–4.86 s with a 0.75-s margin (bytes came for 0.7–1.1 s);
#: the relay also adds ~0.4 s of latency to SRT (0.58 s vs RTMP's 0.18 s)
DELAY_S = 1.0
#: the protocols each relayed scheme needs (``-protocol_whitelist``)
RELAY_PROTOCOLS = {"srt": "srt,udp"}


def ffmpeg_cli() -> str | None:
    """The ``ffmpeg`` executable: ``ARGUS_FFMPEG`` if set, else the one on PATH."""
    return os.environ.get("ARGUS_FFMPEG") or shutil.which("ffmpeg")


def cli_has_protocol(scheme: str) -> bool:
    """Whether the ``ffmpeg`` CLI can read ``scheme`` (its ``-protocols`` list, input side)."""
    exe = ffmpeg_cli()
    return bool(exe) and scheme in RELAY_PROTOCOLS and scheme in _cli_inputs(exe)


@functools.cache
def _cli_inputs(exe: str) -> frozenset[str]:
    """The input protocols of one ``ffmpeg`` executable (asked once per executable)."""
    try:
        out = subprocess.run([exe, "-hide_banner", "-protocols"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return frozenset()
    return frozenset(out.split("Input:", 1)[-1].split("Output:", 1)[0].split())


class RelayFailed(ConnectionError):
    """The CLI ended before it relayed a byte (its stderr's last line says why)."""


class RelayStalled(TimeoutError):
    """The relay brought no byte for longer than the stall bound."""


class CliRelay:
    """``ffmpeg -i url -c copy -f mpegts pipe:1`` as a read-only file object (see the module docstring)."""

    def __init__(self, url: str, *, stall_s: float, open_timeout: float, stop: Callable[[], bool] = lambda: False,
                 exe: str | None = None) -> None:
        self.url, self.stall_s, self.open_timeout, self.stop = url, stall_s, open_timeout, stop
        self.exe = exe or ffmpeg_cli()
        self.proc: subprocess.Popen[bytes] | None = None
        self._head = b""  # bytes read while waiting for the first ones
        self.frame_s = 0.04  #: the stream's frame interval, once known (see :meth:`silence_s`)
        self._err: "tempfile._TemporaryFileWrapper[bytes] | None" = None  # type: ignore[name-defined]

    def command(self) -> list[str]:
        scheme = urlsplit(self.url).scheme.lower()
        return [self.exe or "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
                "-protocol_whitelist", RELAY_PROTOCOLS.get(scheme, scheme),
                # a short probe: the streams' layout is all a remux needs, and PyAV probes again behind us
                "-probesize", "500000", "-analyzeduration", "500000",
                # the source's own timestamps (wraps and jumps included): the job clock judges them, not the relay
                "-i", self.url, "-map", "0:v", "-c", "copy", "-copyts",
                "-f", "mpegts", "-muxdelay", "0", "-muxpreload", "0", "-flush_packets", "1", "pipe:1"]

    def silence_s(self) -> float:
        """How long the relay may bring nothing before the connection counts as lost: three frame intervals,
        2 s at least, within the caller's ``stall_s``. SRT runs over UDP: a publisher that dies sends no
        FIN, and libsrt's peer idle timeout is 5 s, so silence is the only sign. Measured (bench_live
        reconnect, publisher killed and back after 1 s): first frame 5.74 s after its return with the
        caller's 3.5-s bound, against the issue's 5 s; a live stream's bytes come every frame."""
        return min(self.stall_s, max(2.0, 3.0 * self.frame_s))

    def start(self) -> "CliRelay":
        if not self.exe:
            raise RelayFailed("no ffmpeg executable to relay through")
        # stderr to an unlinked temporary file: a pipe nobody drains would block a CLI that logs a lot
        self._err = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._err)
        try:
            self._head = self._wait_bytes(65536, self.open_timeout, opening=True)
        except BaseException:
            self.close()
            raise
        return self

    def _wait_bytes(self, n: int, limit_s: float, opening: bool = False) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        end = time.monotonic() + limit_s
        while True:
            if self.stop():
                return b""
            left = end - time.monotonic()
            if left <= 0:
                if opening:
                    raise RelayFailed(f"no data from {urlsplit(self.url).scheme} within {limit_s:g} s")
                raise RelayStalled(f"no data from the relay for {limit_s:.1f} s")
            ready, _, _ = select.select([fd], [], [], min(0.05, left))
            if not ready:
                continue
            data = os.read(fd, n)
            if data:
                return data
            if opening:  # the CLI ended before a byte: why, from its stderr
                self.proc.wait(2)
                assert self._err is not None
                self._err.seek(0)
                tail = self._err.read().decode("utf-8", "replace").strip().splitlines()
                raise RelayFailed(tail[-1] if tail else f"ffmpeg exited with {self.proc.returncode}")
            return b""  # end of stream: the live loop reconnects

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        if self.proc is None:
            return b""
        return self._wait_bytes(n if n and n > 0 else 65536, self.silence_s())

    def close(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(1.0)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        if self._err is not None:
            self._err.close()
            self._err = None
