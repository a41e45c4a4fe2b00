"""The one decode loop over consecutive windows of a finite video, several at once (issue 11, shots only).

Shots-only analysis decodes every reference frame of the stream (the 64×36 tap every 100 ms lands on most
frames of 25 fps video), and H.264 reference frames decode one after the other: FFmpeg's frame threads
barely help once the non-reference frames are skipped — each decoded frame is the next one's reference.
Measured on the 720p ``mixed`` benchmark file (31.2 s, x264 veryfast, 428 of 780 frames are references,
skip_frame NONREF, no loop filter, idle 2-core box): one opening 1.26 s with 1 frame thread, 1.19 s with 2;
two openings decoding the two halves in two threads 0.70 s. PyAV releases the GIL while FFmpeg decodes and
scales, so threads are enough; the per-frame conversion (``convert``) runs in the same thread as the decode,
so only small arrays cross back and no decoded frame is held.

Exactness: a chunk is :func:`~.sampler.frames` over a window of the same absolute grid ``k·step`` (the grid
does not move with ``ss``), split half a step off a grid point so that no point belongs to two chunks or to
none, and the frame shown at a target is the one with the largest pts at or before it whichever keyframe
the decoding started from. Splits are put just before a keyframe where the container has an index, so a
chunk's seek lands where it starts and nothing is decoded twice.

Only for sources that declare they serve several openings at once (:meth:`~.source.Source.openings`): a
local file; never a live stream or a URL (one connection per source).
"""

from __future__ import annotations

import bisect
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from ..request import Sampling, bounded
from .clock import Clock, keyframe_times
from .sampler import Sample, StopCheck, frames
from .source import OpenedVideo, Source

T = TypeVar("T")

#: a chunk holds at most this much video: (workers + 1) chunks of converted results are in memory at once
MAX_CHUNK_S = 60.0
#: shorter chunks than this are not worth their opening and seek
MIN_CHUNK_S = 4.0


def plan(start: float, end: float, step: float, keys: Sequence[float], workers: int,
         max_chunk_s: float = MAX_CHUNK_S, min_chunk_s: float = MIN_CHUNK_S) -> list[tuple[float, float]]:
    """Windows ``(ss, until)`` that split the grid ``k·step`` over ``[start, end)`` among chunks.

    At least ``2 × workers`` chunks (so no worker idles while the last one finishes), at most
    ``max_chunk_s`` long, none under ``min_chunk_s``. Each split is half a step before the first grid
    point at or after a keyframe (``keys``: the container's keyframe times; the last one at or before
    the even split), so the next chunk's seek lands on that keyframe. Pure."""
    length = end - start
    if workers <= 1 or not math.isfinite(length) or length < 2 * min_chunk_s or step <= 0:
        return [(start, end)]
    parts = min(max(2 * workers, math.ceil(length / max_chunk_s)), int(length // min_chunk_s))
    # within half a step of min_chunk_s is enough: the split sits half a step before a grid point, and a key
    # 4.0 s in (split 3.95 s) was dropped, leaving the 20.8-s benchmark file 3 chunks and one core idle for
    # the last 0.17 s of a 0.52-s pass
    slack = min(0.5 * step, 0.5 * min_chunk_s) + 1e-9   # never an empty chunk, whatever the step
    bounds = [start]
    for i in range(1, parts):
        x = start + length * i / parts
        j = bisect.bisect_right(keys, x) - 1
        anchor = keys[j] if j >= 0 and keys[j] >= bounds[-1] + min_chunk_s else x
        split = (math.ceil(anchor / step - 1e-9) - 0.5) * step
        if split > bounds[-1] and split - bounds[-1] >= min_chunk_s - slack and end - split >= min_chunk_s - slack:
            bounds.append(split)
    return list(zip(bounds, [*bounds[1:], end]))


class _Openings:
    """Openings of the source handed to one chunk at a time: the caller's fresh one for the first chunk
    (a window at 0 plans no seek, so it must start at the start), then any free one — a later chunk
    always seeks."""

    def __init__(self, source: Source, first: OpenedVideo, prepare: Callable[[OpenedVideo], None]) -> None:
        self.source, self.first, self.prepare = source, first, prepare
        self.free: "queue.SimpleQueue[OpenedVideo]" = queue.SimpleQueue()
        self.mine: list[OpenedVideo] = []
        self.lock = threading.Lock()

    def take(self, index: int) -> OpenedVideo:
        if index == 0:
            return self.first
        try:
            return self.free.get_nowait()
        except queue.Empty:
            video = self.source.open()
            self.prepare(video)
            with self.lock:
                self.mine.append(video)
            return video

    def give(self, video: OpenedVideo) -> None:
        self.free.put(video)

    def close(self) -> None:
        for video in self.mine:   # the caller's own opening stays the caller's to close
            video.close()


class _End:
    """The last item of a chunk's queue: how it ended (``error`` None: it ran to its window's end)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def parallel_frames(source: Source, first: OpenedVideo, s: Sampling, convert: Callable[[], Callable[[Sample], T]],
                    stop: StopCheck = lambda: False, workers: int = 2,
                    prepare: Callable[[OpenedVideo], None] = lambda video: None) -> Iterator[tuple[int, T]]:
    """``(offset_ms, convert(sample))`` for every mode-0 grid target of ``s`` over ``[0, end)``, in order,
    decoded in chunks by ``workers`` threads (:func:`plan`).

    ``convert`` makes one converter per chunk (a converter may keep state such as a scaler, which is not
    shared across threads); a converter with an ``observe`` method is shown every frame its chunk decodes
    (:data:`~.sampler.Observer`). An error inside a chunk comes out after the items that chunk produced before
    it, exactly where the sequential loop would have raised it; the chunks after it are dropped. Closing
    the iterator stops every worker at its next frame. ``prepare`` is applied to every opening made here
    before it decodes (decoder options the caller set on ``first``)."""
    s = bounded(s)
    clock = Clock(first.stream)
    duration = first.duration if first.duration is not None else math.inf
    end = min(duration, s.ss + s.t) if s.t else duration
    windows = plan(s.ss, end, s.interval, keyframe_times(first.stream, clock), workers)
    halt = threading.Event()

    def stopped() -> bool:
        return halt.is_set() or stop()

    if len(windows) == 1:
        one = convert()
        for sample in frames(first, s, stopped, frame_threads=None, observe=getattr(one, "observe", None)):
            yield sample.offset_ms, one(sample)
        return
    openings = _Openings(source, first, prepare)

    def run(index: int, ss: float, until: float, out: "queue.SimpleQueue[tuple[int, T] | _End]") -> None:
        # items stream out as they are made: the consumer works on a chunk while it is being decoded
        try:
            video = openings.take(index)
        except BaseException as exc:
            out.put(_End(exc))
            return
        try:
            one = convert()
            open_end = index == len(windows) - 1 and not s.t   # the last chunk of "to the end": the file decides
            window = Sampling(mode=0, interval=s.interval, ss=ss, t=None if open_end else until - ss)
            # no frame threads: the other workers have the other cores
            for sample in frames(video, window, stopped, frame_threads=False, observe=getattr(one, "observe", None)):
                out.put((sample.offset_ms, one(sample)))
            out.put(_End())
        except BaseException as exc:   # re-raised by the consumer, in order
            out.put(_End(exc))
        finally:
            openings.give(video)   # the caller's too: every later chunk seeks

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argus-chunk")
    pending: list[tuple[Future[None], "queue.SimpleQueue[tuple[int, T] | _End]"]] = []
    try:
        nxt = 0
        for _ in range(len(windows)):
            while nxt < len(windows) and len(pending) <= workers:   # one queued beyond the busy ones
                q: "queue.SimpleQueue[tuple[int, T] | _End]" = queue.SimpleQueue()
                pending.append((pool.submit(run, nxt, *windows[nxt], q), q))
                nxt += 1
            _future, q = pending.pop(0)
            while not isinstance(item := q.get(), _End):
                yield item
            if item.error is not None:
                raise item.error
            if stop():
                return
    finally:
        halt.set()
        for f, _q in pending:
            f.cancel()
        pool.shutdown(wait=True)
        openings.close()
