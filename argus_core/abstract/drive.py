"""IO driver of the shot detector: frames from the sampler (CONTRACT §2) into :class:`ShotDetector`.

The only module of :mod:`argus_core.abstract` that decodes. The sampler import lives here alone (one line to
change when it moves to ``argus_core.media.sampler``). ``detect_shots`` makes one coarse pass (every
``step_s``, frames reformatted to ``size``) and, per cut, one short dense pass over the cut's sampling window
at the frame interval to put it on the exact frame.
"""

from __future__ import annotations

from typing import Callable

import av
import msgspec
import numpy as np

from ..request import Sampling
from ..media.sampler import sample  # the one sampler import of the package
from ..media.source import open_video
from .shots import Boundary, Cue, Params, Shot, ShotDetector, refine_cut, shots_from

SMALL = (64, 36)


class ShotResult(msgspec.Struct):
    """Level 3 of an abstract: boundaries, shots covering the analysed span, technical cues, and the
    per-sample colour histograms (``sample_ms`` / ``histograms``) scene grouping takes per shot."""

    boundaries: list[Boundary]
    shots: list[Shot]
    cues: list[Cue]
    duration_ms: int
    fps: float
    sample_ms: list[int] = []
    histograms: list[list[float]] = []


def video_rate(uri: str, timeout: float = 30.0) -> tuple[float, float | None, float]:
    """(frames per second, duration in s or None, the stream's start in s) of ``uri``'s video stream."""
    container, stream = open_video(uri, timeout)
    try:
        rate = stream.average_rate or stream.guessed_rate or 25
        dur = None
        if stream.duration is not None and stream.time_base is not None:
            dur = float(stream.duration * stream.time_base)
        elif container.duration:
            dur = container.duration / 1e6
        start = float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0
        return float(rate), dur, start
    finally:
        container.close()


def small_rgb(frame: av.VideoFrame, size: tuple[int, int] = SMALL) -> np.ndarray:
    return frame.reformat(width=size[0], height=size[1], format="rgb24").to_ndarray()


def detect_shots(uri: str, step_s: float = 0.1, ss: float = 0.0, t: float | None = None, *,
                 size: tuple[int, int] = SMALL, params: Params | None = None, refine: bool = True,
                 stop: Callable[[], bool] = lambda: False, timeout: float = 30.0,
                 progress: Callable[[int], None] | None = None) -> ShotResult:
    """Shot boundaries of ``uri`` over ``[ss, ss+t)``; ``progress(offset_ms)`` after each coarse sample.

    Raises the sampler's documented :class:`~argus_core.errors.ArgusError` for unreachable or undecodable
    sources."""
    fps, duration, start_s = video_rate(uri, timeout)
    step_ms = max(1, round(step_s * 1000))
    det = ShotDetector(step_ms, params)
    found: list[Boundary] = []
    last = 0
    for off, frame in sample(uri, Sampling(mode=0, interval=step_s, ss=ss, t=t), stop, timeout=timeout):
        found += det.feed(off, small_rgb(frame, size))
        last = off
        if progress is not None:
            progress(off)
    end_ms = int(round((ss + t) * 1000)) if t else (int(round(duration * 1000)) if duration else last + step_ms)
    found += det.finish(end_ms)
    if refine:
        found = [refine_in(uri, b, fps, size, stop, timeout, start_s) if b.window_ms else b for b in found]
    frame_ms = 1000.0 / fps
    start_ms = int(round(ss * 1000))
    shots = shots_from(found, end_ms, frame_ms, det.p.min_shot_ms)
    found = [b for b in found if any(s.start_ms == b.time_ms for s in shots)]
    shots = [s for s in shots if s.end_ms > start_ms]
    return ShotResult(found, shots, det.cues, end_ms, fps, det.sample_ms,
                      [h.astype(np.float32).tolist() for h in det.histograms])


def refine_in(uri: str, b: Boundary, fps: float, size: tuple[int, int] = SMALL,
              stop: Callable[[], bool] = lambda: False, timeout: float = 30.0, start_s: float = 0.0) -> Boundary:
    """``b`` refined on the frames of its window, decoded at the frame interval; ``start_s``: the stream's
    start (MPEG-TS near 1.4 s), which offsets count from (CONTRACT §2)."""
    assert b.window_ms is not None
    lo, hi = b.window_ms
    interval = 1.0 / fps
    # one frame early: the grid point at ``lo`` may already show a later frame than the coarse sample did
    ss = max(0.0, lo / 1000.0 - interval)
    win = Sampling(mode=0, interval=interval, ss=ss, t=hi / 1000.0 - ss + interval / 2)
    # the frame's own time, not the grid's: k/fps in floating point may fall a hair before a frame's pts,
    # and the sampler then (rightly) names the frame before it (Megamind.avi: 98/23.976 s, one frame early)
    frames = [(round((f.time - start_s) * 1000) if f.time is not None else off, small_rgb(f, size))
              for off, f in sample(uri, win, stop, timeout=timeout)]
    return refine_cut(b, frames)
