"""The one media clock: stream timestamps → seconds from the start of the video, and seconds → ms offsets.

Used by the sampler for every frame it yields (and so by the engine, the frames-only task and the cut saver,
which all take their frames from the sampler). CONTRACT §2: an offset is the time of the frame from the
stream's start, in whole milliseconds.
"""

from __future__ import annotations

import time
from fractions import Fraction
from typing import Callable, NamedTuple

import av


def ms(seconds: float) -> int:
    """Seconds → a whole-millisecond offset (CONTRACT §2)."""
    return int(round(seconds * 1000))


class Clock:
    """Stream timestamps → seconds from the start of the video (``start_time`` may be negative or large:
    MPEG-TS starts near 1.4 s, edit lists start below 0)."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.tb = stream.time_base or Fraction(1, 90000)
        self._tb_float = float(self.tb)
        self.start = stream.start_time if stream.start_time is not None else 0
        rate = stream.average_rate or stream.guessed_rate or 25
        self.frame_dur = 1.0 / float(rate) if rate else 0.04
        self._last = -self.frame_dur

    def seconds(self, frame: av.VideoFrame) -> float:
        if frame.pts is None:
            # no timestamp: assume one frame after the previous one
            self._last += self.frame_dur
            return self._last
        t = float((frame.pts - self.start) * self.tb)
        self._last = t
        return t

    def of(self, ts: int) -> float:
        """A stream timestamp → seconds (float arithmetic: called for every packet)."""
        return (ts - self.start) * self._tb_float

    def ts(self, seconds: float) -> int:
        """Seconds → a stream timestamp (for seeking)."""
        return int(self.start + seconds / self.tb)


def keyframe_times(stream: av.video.stream.VideoStream, clock: Clock) -> list[float]:
    """Keyframe presentation times from the container's index (empty when the format keeps none, e.g.
    MPEG-TS).

    MP4's index holds decode times, which run one reorder delay ahead of the picture (two frames of x264's
    B-frames: the keyframe shown at 9.12 s is indexed at 9.04 s). Taken as they are, a chunk split or a seek
    just after 9.04 s lands on the keyframe before (the frame shown there is still the previous GOP's) and
    decodes a whole GOP twice — 35 ms of CPU per chunk on the 720p benchmark file. The delay is where the
    index starts before the stream's first picture (0 for indexes of presentation times, e.g. Matroska's),
    at most the codec's reorder depth in frames: an MP4 cut with ``-ss … -c copy`` starts its index at the
    samples its edit list hides (1.4 s before the first picture, where the delay is 80 ms).
    Keyframes of an open GOP are still listed early by their leading B-frames (as before: a seek lands one
    GOP early, and the frames are right)."""
    try:
        stamps = [e.timestamp for e in stream.index_entries if e.is_keyframe]
        depth = int(stream.codec_context.reorder_depth or 0)
    except Exception:  # pragma: no cover - formats without an index
        return []
    if not stamps:
        return []
    delay = min(max(0, clock.start - min(stamps)), round(depth * clock.frame_dur / clock.tb))
    return sorted(float((t + delay - clock.start) * clock.tb) for t in stamps)


# -- live sources (issue 12) ------------------------------------------------------------------------
#: a pts step larger than this (s) within one connection is a discontinuity, not the stream's pace
#: (33-bit MPEG-TS wrap at 95 443.7 s, HLS EXT-X-DISCONTINUITY, encoder restart, PTS reset to 0)
JUMP_BOUND_S = 5.0
#: a pts this close to the previous one is the same instant (a repeated frame): dropped, never re-offset
SAME_PTS_S = 1e-3


class LiveTime(NamedTuple):
    """Where a live frame lies on the job clock: ``offset_ms`` (None: dropped, it would repeat or go back)
    and ``discontinuity``, the reason the clock re-anchored at this frame (None within a run)."""

    offset_ms: int | None
    discontinuity: str | None = None


class LiveClock:
    """Stream timestamps of a live source → ms offsets on ONE monotonic job clock (issue 12, CONTRACT §2).

    Within a run (one connection, no jump) ``offset = anchor + (pts − first_pts)``, so offsets keep the
    stream's own pace (no wall-clock jitter). The clock re-anchors — ``anchor = max(wall time, last offset +
    one frame)`` — at the first frame after :meth:`reconnect` and at any pts step larger than ``bound_s``
    forwards or any step backwards: the 33-bit MPEG-TS wrap, an HLS discontinuity, an encoder restart, a
    PTS reset to 0. A re-anchor other than the job's very first anchor reports a ``discontinuity``.
    Offsets are strictly increasing whole ms: a frame that would repeat or go back is dropped.

    Wall time is ``start_ms`` + seconds since the clock was made, on ``now`` (``time.monotonic``): a job
    resumed on another worker passes one past the last offset it persisted as ``start_ms``, so the clock
    continues (and its first frame reports the ``resume`` discontinuity).
    Pure state: ``now`` is injectable, so the table tests drive it without sleeping.
    """

    def __init__(self, start_ms: int = 0, bound_s: float = JUMP_BOUND_S, frame_s: float = 0.04,
                 now: Callable[[], float] = time.monotonic) -> None:
        self._now = now
        self._t0 = now()
        self.start_ms = start_ms
        self.bound_s = bound_s
        self.frame_s = frame_s  # the minimum step after a re-anchor (one frame)
        self.last_ms: int | None = None  # the last offset handed out
        self._anchor: float | None = None  # job seconds of the run's first frame
        self._first: float = 0.0  # its pts (s)
        self._last_pts: float = 0.0
        # why the next frame re-anchors: a resumed job's first frame is a discontinuity (a gap in the stream)
        self._pending: str | None = "resume" if start_ms > 0 else "start"
        self.discontinuities = 0

    def wall(self) -> float:
        """Seconds on the job clock now (``start_ms`` + monotonic time since the clock started)."""
        return self.start_ms / 1000.0 + (self._now() - self._t0)

    def reconnect(self) -> None:
        """The source was reopened: its first frame re-anchors (timestamps of a new connection are unrelated)."""
        if self._pending is None:
            self._pending = "reconnect"

    def peek(self, pts_s: float) -> float | None:
        """Job seconds of a pts without changing state (None when that frame would re-anchor): for
        deciding whether a packet needs decoding before it is decoded."""
        if self._anchor is None or self._pending is not None or self._jumps(pts_s):
            return None
        return self._anchor + (pts_s - self._first)

    def _jumps(self, pts_s: float) -> bool:
        step = pts_s - self._last_pts
        return step > self.bound_s or step < -SAME_PTS_S

    def at(self, pts_s: float) -> LiveTime:
        """The job-clock offset of a decoded frame with presentation time ``pts_s`` (seconds, stream time
        base), frames in presentation order."""
        reason = self._pending
        if reason is None and self._anchor is not None and self._jumps(pts_s):
            reason = "pts jump" if pts_s > self._last_pts else "pts backwards"
        if reason is None:
            assert self._anchor is not None
            if pts_s - self._last_pts < SAME_PTS_S:
                return LiveTime(None)  # the same instant again
            t = self._anchor + (pts_s - self._first)
            offset = ms(t)
            if self.last_ms is not None and offset <= self.last_ms:
                return LiveTime(None)  # sub-millisecond step: would repeat an offset
            self._last_pts = pts_s
            self.last_ms = offset
            return LiveTime(offset)
        anchor = self.wall()
        if self.last_ms is not None:
            anchor = max(anchor, self.last_ms / 1000.0 + self.frame_s)
        self._anchor, self._first, self._last_pts = anchor, pts_s, pts_s
        self._pending = None
        offset = ms(anchor)
        if self.last_ms is not None and offset <= self.last_ms:
            offset = self.last_ms + 1
        first_ever = self.last_ms is None and reason == "start"
        self.last_ms = offset
        if first_ever:
            return LiveTime(offset)
        self.discontinuities += 1
        return LiveTime(offset, reason)
