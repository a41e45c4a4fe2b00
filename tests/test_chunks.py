"""Chunked parallel decoding (argus_core/media/chunks.py): the plan as a table, and on a video built from
real footage, the same frames as the one sequential loop, errors in order, no thread or opening left."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pytest
from av.video.reformatter import VideoReformatter

from argus_core.abstract import run
from argus_core.media.chunks import MIN_CHUNK_S, parallel_frames, plan
from argus_core.media.sampler import Sample
from argus_core.media.source import FileSource, LiveSource, OpenedVideo
from argus_core.request import Sampling


# -- the plan (pure) ---------------------------------------------------------------------------------
@pytest.mark.parametrize("start,end,step,keys,workers,want", [
    (0.0, 31.2, 0.1, [], 1, [(0.0, 31.2)]),                       # one worker: one window
    (0.0, float("inf"), 0.1, [], 2, [(0.0, float("inf"))]),       # no known end: one window
    (0.0, 6.0, 0.1, [], 2, [(0.0, 6.0)]),                         # too short for two chunks of MIN_CHUNK_S
    (0.0, 20.0, 0.1, [], 2, [(0.0, 4.95), (4.95, 9.95), (9.95, 14.95), (14.95, 20.0)]),   # 2 × workers parts
    (0.0, 10.0, 0.1, [], 2, [(0.0, 4.95), (4.95, 10.0)]),         # only 2 parts of at least MIN_CHUNK_S fit
    (0.0, 300.0, 1.0, [], 2, [(60.0 * i - 0.5 if i else 0.0, 60.0 * (i + 1) - 0.5 if i < 4 else 300.0)
                              for i in range(5)]),                # at most MAX_CHUNK_S a chunk
    (0.0, 40.0, 0.5, [], 2, [(0.0, 9.75), (9.75, 19.75), (19.75, 29.75), (29.75, 40.0)]),
    # each split half a step before the first grid point at or after the last keyframe before the even split
    (0.0, 40.0, 0.1, [0.0, 7.03, 12.0, 19.5, 27.81, 35.0], 2,
     [(0.0, 7.05), (7.05, 19.45), (19.45, 27.85), (27.85, 40.0)]),
    (5.0, 25.0, 0.2, [], 2, [(5.0, 9.9), (9.9, 14.9), (14.9, 19.9), (19.9, 25.0)]),   # a later window
    (0.0, 31.2, 8.5, [], 4, [(0.0, 4.25), (4.25, 12.75), (12.75, 21.25), (21.25, 31.2)]),   # a step over 8 s:
    # half a step of slack would exceed the minimum chunk and allow an empty one
])
def test_plan(start, end, step, keys, workers, want):
    got = plan(start, end, step, keys, workers)
    assert [(round(a, 6), round(b, 6)) for a, b in got] == want


@pytest.mark.parametrize("length", [8.0, 13.3, 31.2, 100.0, 3600.0])
@pytest.mark.parametrize("step", [0.04, 0.1, 0.2, 1.0])
def test_plan_partitions_the_grid(length, step):
    windows = plan(0.0, length, step, [], 2)
    assert windows[0][0] == 0.0 and windows[-1][1] == length
    assert all(a[1] == b[0] for a, b in zip(windows, windows[1:]))
    # at least MIN_CHUNK_S, less the half step a split sits before its grid point
    assert all(b - a >= MIN_CHUNK_S - step / 2 - 1e-9 for a, b in windows) or len(windows) == 1
    assert all(b - a <= 60.0 + step for a, b in windows)
    for _a, b in windows[:-1]:   # no split on a grid point: no point in two chunks or in none
        k = b / step
        assert abs(k - round(k)) > 0.4


def test_capabilities():
    assert FileSource("/tmp/x.mp4").openings() > 1
    assert FileSource("https://example.com/x.mp4").openings() == 1
    assert FileSource("/tmp/x.m3u8").openings() == 1
    assert LiveSource("rtmp://127.0.0.1/live/x").openings() == 1


# -- on real footage -----------------------------------------------------------------------------------
@dataclass
class CountingSource:
    """A local file source that counts its openings (and may fail the n-th)."""

    inner: FileSource
    fail_open: int = 0
    opened: list[OpenedVideo] = field(default_factory=list)
    closed: list[OpenedVideo] = field(default_factory=list)

    @property
    def uri(self) -> str:
        return self.inner.uri

    live = False

    def open(self) -> OpenedVideo:
        if self.fail_open and len(self.opened) + 1 >= self.fail_open:
            raise OSError("injected open failure")
        v = self.inner.open()
        self.opened.append(v)
        inner_close = v.close

        def close() -> None:
            self.closed.append(v)
            inner_close()
        v.close = close   # type: ignore[method-assign]
        return v

    def nothing_decodable(self) -> bool:
        return False

    def openings(self) -> int:
        return 4


def _small_converter():
    scaler = VideoReformatter()   # one per chunk: a scaler keeps state and is not shared across threads
    return lambda sample: run.small_rgb(scaler, sample.frame)


def _collect(src, workers, step=0.1, stop=lambda: False):
    first = src.open()
    run.fast_decode(first)   # as the caller does; ``prepare`` repeats it on every opening made inside
    try:
        return list(parallel_frames(src, first, Sampling(mode=0, interval=step, ss=0.0, t=None),
                                    _small_converter, stop, workers, run.fast_decode))
    finally:
        first.close()


def _offsets_until_error(src, convert, error: type[BaseException], match: str) -> list[int]:
    """The offsets two workers produce before ``error`` comes out (it must), the caller's opening closed after."""
    first = src.open()
    got = []
    try:
        with pytest.raises(error, match=match):
            for off, _ in parallel_frames(src, first, Sampling(mode=0, interval=0.1, ss=0.0, t=None), convert,
                                          workers=2):
                got.append(off)
    finally:
        first.close()
    return got


def _chunk_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("argus-chunk")]


@pytest.mark.parametrize("step", [0.1, 0.28])
def test_same_frames_as_the_sequential_loop(mixed, step):
    one = _collect(FileSource(str(mixed.path)), 1, step)
    src = CountingSource(FileSource(str(mixed.path)))
    two = _collect(src, 2, step)
    assert len(src.opened) >= 2, "no second opening: nothing ran in parallel"
    assert [o for o, _ in two] == [o for o, _ in one]
    assert len(one) == int(mixed.duration / step) + 1 or len(one) == int(mixed.duration / step)
    same = [np.array_equal(a, b) for (_, a), (_, b) in zip(one, two)]
    assert all(same), f"{same.count(False)} frames differ"
    assert all(v in src.closed for v in src.opened[1:])   # every opening made here is closed
    assert not _chunk_threads()


def test_an_error_comes_out_in_order_after_the_frames_before_it(mixed):
    def failing():
        conv = _small_converter()

        def one(s: Sample):
            if s.offset_ms == 20_000:
                raise RuntimeError("converter broke at 20 s")
            return conv(s)
        return one

    got = _offsets_until_error(FileSource(str(mixed.path)), failing, RuntimeError, "20 s")
    assert got == list(range(0, 20_000, 100))
    assert not _chunk_threads()


def test_a_failed_opening_fails_in_order(mixed):
    src = CountingSource(FileSource(str(mixed.path)), fail_open=2)   # the first extra opening fails
    got = _offsets_until_error(src, _small_converter, OSError, "injected")
    assert got and got == list(range(0, got[-1] + 100, 100))   # the first chunk's frames, then the error
    assert not _chunk_threads()


def test_closing_early_stops_the_workers_and_closes_their_openings(mixed):
    src = CountingSource(FileSource(str(mixed.path)))
    first = src.open()
    it = parallel_frames(src, first, Sampling(mode=0, interval=0.1, ss=0.0, t=None), _small_converter,
                         workers=2)
    for _ in range(5):
        next(it)
    it.close()
    assert not _chunk_threads()
    extra = src.opened[1:]
    assert extra and all(v in src.closed for v in extra)
    assert first not in src.closed   # the caller's opening stays the caller's
    first.close()


def test_shots_only_results_do_not_depend_on_the_workers(mixed):
    a1 = run.analyse(str(mixed.path), run.Options(features=False, decode_workers=1))
    a2 = run.analyse(str(mixed.path), run.Options(features=False, decode_workers=2))
    assert a1.boundaries == a2.boundaries and a1.shots == a2.shots
    assert a1.cues == a2.cues and a1.sample_ms == a2.sample_ms


def test_an_error_in_the_consumer_stops_the_decoding_threads_at_once(mixed, monkeypatch):
    """The shot detector raising mid-pass: analyse's error comes out with no chunk thread still decoding."""
    calls = {"n": 0}
    real = run._Pass.tap_small

    def failing(self, off, rgb):
        calls["n"] += 1
        if calls["n"] == 20:
            raise RuntimeError("detector broke")
        return real(self, off, rgb)

    monkeypatch.setattr(run._Pass, "tap_small", failing)
    with pytest.raises(RuntimeError, match="detector broke") as info:
        run.analyse(str(mixed.path), run.Options(features=False, decode_workers=2))
    assert not _chunk_threads()   # while the traceback (and the pass's frame) is still alive
    assert info.value is not None
