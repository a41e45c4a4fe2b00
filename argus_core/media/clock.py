"""The one media clock: stream timestamps → seconds from the start of the video, and seconds → ms offsets.

Used by the sampler for every frame it yields (and so by the engine, the frames-only task and the cut saver,
which all take their frames from the sampler). CONTRACT §2: an offset is the time of the frame from the
stream's start, in whole milliseconds.
"""

from __future__ import annotations

from fractions import Fraction

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
    """Keyframe times from the container's index (empty when the format keeps none, e.g. MPEG-TS)."""
    try:
        entries = stream.index_entries
        return sorted(float((e.timestamp - clock.start) * clock.tb) for e in entries if e.is_keyframe)
    except Exception:  # pragma: no cover - formats without an index
        return []
