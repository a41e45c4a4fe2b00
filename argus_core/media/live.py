"""Live sources (issue 12): reconnecting, stall-watching sampling of a stream with no end.

:func:`live_samples` is the live twin of :func:`argus_core.media.sampler.frames`: it opens a
:class:`~argus_core.media.source.LiveSource`, samples it on the job clock (:class:`~.clock.LiveClock`), and
on any read error, stall or end of stream reconnects with :class:`Backoff` — the first connect included —
until ``stop()`` says so. What happens to the connection is reported through ``on_event``
(:class:`Connected`, :class:`Disconnected`, :class:`Discontinuity`), in order with the samples.

- mode 0: the frame shown at each grid point ``k·interval`` of the *job clock*. Only packets whose frame
  may be shown at the next grid point (pts within two frames before it) are decoded in full; other
  non-reference frames are dropped by FFmpeg (``skip_frame`` NONREF), so decode cost follows the sampling.
  A frame is never used for two grid points: a grid point inside a gap of the stream gets no sample.
- mode 1: keyframes by pts, plus a frame at least every ``max_gap`` s. Only keyframe packets are fed to
  the decoder once two keyframes less than ``max_gap`` apart were seen; until then, or once keyframes are
  sparser than that, reference frames are decoded so that the ``max_gap`` frame exists when it is due.

Stalls: PyAV's read timeout (``timeout=(open, read)``; its interrupt callback checks a monotonic deadline
set before every ``av_read_frame``) ends a read that blocks; the demux loop's own deadline catches a
stream whose other packets (audio, data) still flow while video stopped.
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Callable, Iterator, NamedTuple

import av
import av.error

from ..errors import ArgusError
from ..request import Sampling
from .clock import LiveClock
from .sampler import Grid, Sample, StopCheck
from .source import LiveSource, OpenedVideo

log = logging.getLogger("argus.live")


# -- reconnect backoff ------------------------------------------------------------------------------
class Backoff:
    """Reconnect delays: ``base``·2ⁿ s capped at ``cap`` (1, 2, 4 … 30 s), each scaled by a random factor
    in ``[1 − jitter, 1 + jitter]`` (so many workers that lost one server do not all call at once), and
    reset to the start after a connection that stayed up ``healthy_s`` (a healthy minute).

    During the first ``fast_s`` of an outage no delay exceeds ``fast_cap``: an encoder restart is back within
    seconds, and with plain doubling a publisher back at 3 s waited for the try at 7 s (bench/bench_live.py
    measured first-frame-after-return p95 6.2–6.6 s on RTMP against the issue's 5 s). Longer outages back off
    as before. Pure state: the caller passes the time and ``rand`` is injectable."""

    def __init__(self, base: float = 1.0, cap: float = 30.0, healthy_s: float = 60.0, jitter: float = 0.2,
                 rand: Callable[[], float] = random.random, fast_s: float = 30.0, fast_cap: float = 2.0) -> None:
        self.base, self.cap, self.healthy_s, self.jitter, self.rand = base, cap, healthy_s, jitter, rand
        self.fast_s, self.fast_cap = fast_s, fast_cap
        self.failures = 0  # consecutive, since the last healthy connection
        self._up_since: float | None = None
        self._down_since: float | None = None  # when the current outage began

    def connected(self, now: float) -> None:
        self._up_since = now

    def failed(self, now: float) -> float:
        """A connect failed or a connection ended at ``now``: the seconds to wait before the next try."""
        if self._up_since is not None:
            if now - self._up_since >= self.healthy_s:
                self.failures = 0
            self._down_since = None  # it was up: a new outage starts now
        if self._down_since is None:
            self._down_since = now
        self._up_since = None
        delay = min(self.cap, self.base * 2 ** min(self.failures, 30))
        self.failures += 1
        spread = 1.0 + self.jitter * (2.0 * self.rand() - 1.0)
        limit = self.fast_cap if now - self._down_since < self.fast_s else self.cap
        return min(limit, delay * spread)


# -- what happens to the connection ------------------------------------------------------------------
class Connected(NamedTuple):
    reconnects: int  #: how many connections came before this one


class Disconnected(NamedTuple):
    reason: str
    retry_in_s: float


class Discontinuity(NamedTuple):
    """The job clock re-anchored: frames from ``offset_ms`` on are not continuous with the ones before."""

    offset_ms: int
    reason: str  #: "reconnect", "pts jump", "pts backwards", "resume"


class Frame(NamedTuple):
    """A sample went out: its offset and the job-clock lag (wall − offset, ms) when it did."""

    offset_ms: int
    lag_ms: int


class Decoded(NamedTuple):
    """A video frame came from the source (sampled or not): what ``params.live.timeout`` watches."""


DECODED = Decoded()

LiveEvent = Connected | Disconnected | Discontinuity | Frame | Decoded


class Stalled(Exception):
    """No video for longer than the stall bound while the connection still looked alive."""


def _wait(seconds: float, stop: StopCheck, step: float = 0.1) -> bool:
    """Sleep ``seconds`` unless ``stop()``; True when stopped."""
    end = time.monotonic() + seconds
    while True:
        if stop():
            return True
        left = end - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(step, left))


def live_samples(source: LiveSource, s: Sampling, stop: StopCheck, clock: LiveClock,
                 on_event: Callable[[LiveEvent], None] = lambda ev: None,
                 backoff: Backoff | None = None) -> Iterator[Sample]:
    """Samples of a live source until ``stop()``, reconnecting for ever (see the module docstring)."""
    backoff = backoff or Backoff()
    connections = 0
    while not stop():
        try:
            video = source.open(stop)
        except ArgusError as exc:
            delay = backoff.failed(time.monotonic())
            on_event(Disconnected(f"connect failed: {exc.detail or exc.message}", delay))
            if _wait(delay, stop):
                return
            continue
        backoff.connected(time.monotonic())
        on_event(Connected(connections))
        connections += 1
        clock.reconnect()
        reason = "end of stream"
        try:
            with video:
                yield from _one_connection(video, s, stop, clock, on_event, source.deadline_s)
        except Stalled as exc:
            reason = f"stalled: {exc}"
        except (av.error.FFmpegError, OSError, EOFError) as exc:
            reason = f"read error: {type(exc).__name__}: {exc}"
        if stop():
            return
        delay = backoff.failed(time.monotonic())
        on_event(Disconnected(reason, delay))
        log.info("live source %s disconnected (%s); retrying in %.1f s", source.redacted, reason, delay)
        if _wait(delay, stop):
            return


class _Mode0:
    """The frame shown at each job-clock grid point; which packets need decoding in full."""

    def __init__(self, s: Sampling, clock: LiveClock) -> None:
        start = (clock.last_ms + 1 if clock.last_ms is not None else clock.start_ms) / 1000.0
        self.grid = Grid(Sampling(0, s.interval, max(start, 0.0), None), None)
        self.target = self.grid.at_or_after(start)
        self.prev: tuple[int, av.VideoFrame] | None = None  # the last decoded frame (ms), not yet used

    def reset(self, offset_ms: int) -> None:
        """A discontinuity: the frame before it shows nothing after it; grid points in the gap are skipped."""
        self.prev = None
        self.target = self.grid.at_or_after(offset_ms / 1000.0)

    def needs(self, t: float | None, frame_s: float) -> bool:
        return t is None or self.target is None or t >= self.target - 2.5 * frame_s

    def take(self, offset_ms: int, frame: av.VideoFrame) -> Iterator[Sample]:
        while self.target is not None:
            tgt_ms = int(round(self.target * 1000))
            if offset_ms == tgt_ms:
                self.prev = None
                self.target = self.grid.after(self.target)
                yield Sample(tgt_ms, frame)
                return
            if offset_ms < tgt_ms:
                break
            # this frame comes after the grid point: the one before it was shown there
            if self.prev is not None:
                yield Sample(tgt_ms, self.prev[1])
                self.prev = None
            self.target = self.grid.after(self.target)
        self.prev = (offset_ms, frame)


class _Mode1:
    """Keyframes, plus a frame every ``max_gap`` s; whether only keyframe packets need feeding."""

    def __init__(self, s: Sampling) -> None:
        self.max_gap = s.max_gap if s.max_gap > 0 else math.inf
        self.last_emit: int | None = None
        self.last_key_pts: float | None = None
        self.keys_only = False

    def reset(self, offset_ms: int) -> None:
        self.last_key_pts = None
        self.keys_only = False

    def key_packet(self, pts_s: float) -> None:
        if self.last_key_pts is not None and pts_s > self.last_key_pts:
            self.keys_only = pts_s - self.last_key_pts <= self.max_gap
        self.last_key_pts = pts_s

    def take(self, offset_ms: int, frame: av.VideoFrame) -> Iterator[Sample]:
        if frame.key_frame or self.last_emit is None or offset_ms - self.last_emit >= self.max_gap * 1000 - 0.5:
            self.last_emit = offset_ms
            yield Sample(offset_ms, frame)


def _one_connection(video: OpenedVideo, s: Sampling, stop: StopCheck, clock: LiveClock,
                    on_event: Callable[[LiveEvent], None], stall_s: float) -> Iterator[Sample]:
    stream = video.stream
    cc = stream.codec_context
    tb = float(stream.time_base or 0) or 1 / 90000
    rate = stream.average_rate or stream.guessed_rate
    frame_s = 1.0 / float(rate) if rate else 0.04
    clock.frame_s = frame_s
    mode: _Mode0 | _Mode1 = _Mode1(s) if s.mode == 1 else _Mode0(s, clock)
    skip = ""
    last_video = resumed = time.monotonic()
    last_pts: float | None = None
    for packet in video.container.demux():
        if stop():
            return
        now = time.monotonic()
        if packet.stream_index != stream.index:
            # silence counts from the last video packet or from when the consumer last let us read again,
            # whichever is later: the time a caller holds this generator (the engine's decoder waiting on a
            # full ring) is not the stream's. Counting it made the first audio packet after such a wait a
            # "stall", and the reconnect lost ``ffmpeg -listen 1`` publishers for good (bench_live, 8 streams).
            silent = now - max(last_video, resumed)
            if silent > stall_s:
                raise Stalled(f"no video for {silent:.1f} s")
            continue
        last_video = now
        if packet.size == 0:
            continue  # the end-of-stream flush packet: a live source reconnects instead of flushing
        pts = packet.pts if packet.pts is not None else packet.dts
        pts_s = pts * tb if pts is not None else None
        if isinstance(mode, _Mode1):
            if packet.is_keyframe and pts_s is not None:
                mode.key_packet(pts_s)
            elif mode.keys_only:
                continue
            want = "NONKEY" if mode.keys_only else "NONREF"
        else:
            want = "DEFAULT" if mode.needs(clock.peek(pts_s) if pts_s is not None else None, frame_s) else "NONREF"
        if want != skip:
            cc.skip_frame = want
            skip = want
        try:
            decoded = stream.decode(packet)
        except av.error.InvalidDataError as exc:
            log.warning("skipping undecodable live data: %s", exc)
            continue
        for frame in decoded:
            fp = frame.pts if frame.pts is not None else None
            if fp is None:
                if last_pts is None:
                    continue
                f_s = last_pts + frame_s
            else:
                f_s = fp * tb
            last_pts = f_s
            on_event(DECODED)
            when = clock.at(f_s)
            if when.offset_ms is None:
                continue
            if when.discontinuity is not None:
                mode.reset(when.offset_ms)
                on_event(Discontinuity(when.offset_ms, when.discontinuity))
            for item in mode.take(when.offset_ms, frame):
                on_event(Frame(item.offset_ms, int(round(clock.wall() * 1000)) - item.offset_ms))
                yield item
                resumed = time.monotonic()
