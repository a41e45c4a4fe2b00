"""A live publisher whose publish time of every frame is known (for bench_live, issue 12).

The ``ffmpeg`` CLI publishes (RTMP ``-listen 1``, HTTP-TS ``-listen 1``, an HLS directory) what it reads on its
stdin with ``-c copy -copyts``; this module writes that stdin itself, in real time: an MPEG-TS clip, looped for
ever, one video frame (the TS packets from one video PES start to the next) at ``t0 + (dts − dts0)``. The
timestamps are rewritten on the way (PTS, DTS, PCR, continuity counters) so the loop is one continuous stream
and, on request, jumps forward by :data:`JUMP_S` — a *marker*: the engine reports a ``pts jump``
discontinuity at that frame, which pins its job-clock offsets to our pts for the rest of the connection
(within a run ``offset = anchor + (pts − first_pts)``, so one known pair maps every later frame).

``publish time`` of a frame = the monotonic time its last byte was written into the publisher's stdin. What
FFmpeg then adds (its TS demuxer hands a PES on only when the next one starts: one frame, 40 ms at 25 fps;
the muxer and the loopback socket: ~1 ms) is counted as latency, so the figures are upper bounds.
"""

from __future__ import annotations

import bisect
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TS = 188
JUMP_S = 8.0  #: a marker's pts step: above the engine's 5 s jump bound, below FFmpeg's 10 s dts_delta_threshold
PTS_WRAP = 1 << 33


def _read_ts(b: bytes, i: int) -> int:
    return (((b[i] >> 1) & 7) << 30) | (b[i + 1] << 22) | ((b[i + 2] >> 1) << 15) | (b[i + 3] << 7) | (b[i + 4] >> 1)


def _write_ts(b: bytearray, i: int, v: int) -> None:
    v %= PTS_WRAP
    prefix = b[i] & 0xF0
    b[i] = prefix | (((v >> 30) & 7) << 1) | 1
    b[i + 1] = (v >> 22) & 0xFF
    b[i + 2] = (((v >> 15) & 0x7F) << 1) | 1
    b[i + 3] = (v >> 7) & 0xFF
    b[i + 4] = ((v & 0x7F) << 1) | 1


@dataclass
class Chunk:
    """One video frame's TS packets (plus the PAT/PMT/other packets between it and the next frame)."""

    data: bytes
    dts: int  #: 90 kHz
    pts: int


@dataclass
class Clip:
    chunks: list[Chunk]
    duration: int  #: 90 kHz: one loop (last dts − first dts + one frame)
    frame: int  #: 90 kHz

    @classmethod
    def load(cls, path: Path) -> "Clip":
        data = path.read_bytes()
        assert len(data) % TS == 0 and data[0] == 0x47, "not an MPEG-TS file"
        chunks: list[Chunk] = []
        cur = bytearray()
        cur_ts: tuple[int, int] | None = None
        for off in range(0, len(data), TS):
            p = data[off:off + TS]
            start = _pes_start(p)
            if start is not None and (p[start + 3] & 0xF0) == 0xE0:  # a video PES begins: a new frame
                if cur_ts is not None:
                    chunks.append(Chunk(bytes(cur), cur_ts[0], cur_ts[1]))
                    cur = bytearray()
                flags = p[start + 7] >> 6
                pts = _read_ts(p, start + 9)
                dts = _read_ts(p, start + 14) if flags == 3 else pts
                cur_ts = (dts, pts)
            cur += p
        if cur_ts is not None:
            chunks.append(Chunk(bytes(cur), cur_ts[0], cur_ts[1]))
        frame = min(b.dts - a.dts for a, b in zip(chunks, chunks[1:]) if b.dts > a.dts)
        return cls(chunks, chunks[-1].dts - chunks[0].dts + frame, frame)


def _pes_start(p: bytes) -> int | None:
    """Offset of a PES header starting in this TS packet (payload_unit_start), else None."""
    if not p[1] & 0x40:
        return None
    afc = (p[3] >> 4) & 3
    if not afc & 1:
        return None
    i = 4 + (1 + p[4] if afc & 2 else 0)
    if i + 19 > TS or p[i:i + 3] != b"\x00\x00\x01":
        return None
    return i


def _shift(chunk: bytes, delta: int, cc: dict[int, int]) -> bytes:
    """The chunk with PTS/DTS/PCR moved by ``delta`` (90 kHz) and continuity counters made continuous."""
    out = bytearray(chunk)
    for off in range(0, len(out), TS):
        pid = ((out[off + 1] & 0x1F) << 8) | out[off + 2]
        afc = (out[off + 3] >> 4) & 3
        if afc & 1:  # has payload: the counter advances
            n = (cc.get(pid, -1) + 1) & 0xF
            cc[pid] = n
            out[off + 3] = (out[off + 3] & 0xF0) | n
        if afc & 2 and out[off + 4] > 0 and out[off + 5] & 0x10:  # PCR present
            i = off + 6
            base = (out[i] << 25) | (out[i + 1] << 17) | (out[i + 2] << 9) | (out[i + 3] << 1) | (out[i + 4] >> 7)
            base = (base + delta) % PTS_WRAP
            out[i], out[i + 1], out[i + 2], out[i + 3] = base >> 25, (base >> 17) & 0xFF, (base >> 9) & 0xFF, \
                (base >> 1) & 0xFF
            out[i + 4] = ((base & 1) << 7) | (out[i + 4] & 0x7F)
        start = _pes_start(bytes(out[off:off + TS]))
        if start is not None:
            flags = out[off + start + 7] >> 6
            if flags & 2:
                _write_ts(out, off + start + 9, _read_ts(out, off + start + 9) + delta)
            if flags == 3:
                _write_ts(out, off + start + 14, _read_ts(out, off + start + 14) + delta)
    return bytes(out)


@dataclass
class PublishLog:
    """Every frame written: its output pts (s, the stream's own time) and its monotonic publish time."""

    pts_s: list[float] = field(default_factory=list)  # in write (decode) order
    wall: list[float] = field(default_factory=list)
    jumps: list[tuple[float, float]] = field(default_factory=list)  #: (pts_s of the first frame after, wall)

    def sorted(self) -> tuple[list[float], list[float]]:
        pairs = sorted(zip(self.pts_s, self.wall))
        return [p for p, _ in pairs], [w for _, w in pairs]


class PacedPublisher:
    """``ffmpeg -f mpegts -i pipe: -c copy <out args>`` fed in real time from a looped clip.

    ``markers``: media seconds (from the start of this publisher) at which the pts jumps by :data:`JUMP_S`
    (the jump lands on a loop start, so the first frame after it is a keyframe of a closed GOP)."""

    def __init__(self, clip: Clip, out_args: list[str], log_path: Path, markers: list[float] = (),
                 marker_every: float = 0.0, pts_start_s: float = 10.0) -> None:
        self.clip, self.out_args, self.log_path = clip, out_args, log_path
        self.markers = sorted(markers)
        self.marker_every = marker_every
        self.pts_start = int(pts_start_s * 90000)
        self.log = PublishLog()
        self.proc: subprocess.Popen | None = None
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def start(self) -> "PacedPublisher":
        fh = open(self.log_path, "ab")
        # small probe: FFmpeg starts publishing after ~0.5 s of input instead of 5 s
        self.proc = subprocess.Popen(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-copyts", "-probesize", "200000",
             "-analyzeduration", "500000", "-f", "mpegts", "-i", "pipe:0", "-c", "copy", *self.out_args],
            stdin=subprocess.PIPE, stdout=fh, stderr=fh, bufsize=0)
        fh.close()
        self._halt.clear()
        self._thread = threading.Thread(target=self._feed, name="paced-publisher", daemon=True)
        self._thread.start()
        return self

    def _feed(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        clip, cc = self.clip, {}
        first_dts = clip.chunks[0].dts
        t0 = time.monotonic()
        media = 0  # 90 kHz: media time since start (write clock), jumps excluded
        extra = 0  # 90 kHz: jumps so far
        next_marker = 0
        markers = list(self.markers)
        loop = 0
        try:
            while not self._halt.is_set():
                loop_base = loop * clip.duration
                jump_now = False
                if markers and next_marker < len(markers) and loop_base >= markers[next_marker] * 90000:
                    jump_now, next_marker = True, next_marker + 1
                elif self.marker_every and loop_base > 0 and (
                        loop_base // int(self.marker_every * 90000)
                        != (loop_base - clip.duration) // int(self.marker_every * 90000)):
                    jump_now = True
                if jump_now:
                    extra += int(JUMP_S * 90000)
                for k, ch in enumerate(clip.chunks):
                    if self._halt.is_set():
                        return
                    media = loop_base + ch.dts - first_dts
                    due = t0 + media / 90000.0
                    delay = due - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    delta = self.pts_start - first_dts + loop_base + extra
                    self.proc.stdin.write(_shift(ch.data, delta, cc))
                    now = time.monotonic()
                    pts_s = ((ch.pts + delta) % PTS_WRAP) / 90000.0
                    self.log.pts_s.append(pts_s)
                    self.log.wall.append(now)
                    if jump_now and k == 0:
                        self.log.jumps.append((pts_s, now))
                loop += 1
        except (BrokenPipeError, ValueError, OSError) as exc:
            if not self._halt.is_set():
                self.error = exc

    def kill(self) -> None:
        from tests.live_publishers import kill_publisher

        self._halt.set()
        kill_publisher(self.proc)
        if self._thread is not None:
            self._thread.join(5)


class FrameMap:
    """Job-clock offset ↔ publish time of the frames after one marker (within one connection)."""

    def __init__(self, log: PublishLog, marker_pts: float, marker_offset_ms: int) -> None:
        pts, wall = log.sorted()
        i = bisect.bisect_left(pts, marker_pts - 1e-6)
        self.pts, self.wall = pts[i:], wall[i:]
        self.marker_pts, self.marker_offset_ms = marker_pts, marker_offset_ms

    def offset_of(self, pts_s: float) -> int:
        return self.marker_offset_ms + int(round((pts_s - self.marker_pts) * 1000))

    def last_before(self, offset_ms: int) -> tuple[float, float] | None:
        """(pts, publish time) of the last frame whose job-clock offset is below ``offset_ms``."""
        want = self.marker_pts + (offset_ms - self.marker_offset_ms) / 1000.0
        j = bisect.bisect_left(self.pts, want - 5e-4) - 1
        if j < 0 or j >= len(self.pts) or self.offset_of(self.pts[j]) >= offset_ms:
            return None
        if j == len(self.pts) - 1 and self.offset_of(self.pts[j]) + 200 < offset_ms:
            return None  # beyond what was published: not this run
        return self.pts[j], self.wall[j]
