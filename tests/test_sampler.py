"""Sampling offsets and frame choice (CONTRACT §2), checked against frame-numbered videos."""

from __future__ import annotations

import math

import av
import pytest

from argus_core.request import Sampling
from argus_core.media.clock import Clock, keyframe_times
from argus_core.media.renditions import Converter
from argus_core.media.sampler import interval_targets, sample
from argus_core.media.source import FileSource

from .videos import keyframe_offsets, read_index


def run(path, **kw):
    s = Sampling(mode=kw.pop("mode"), interval=kw.pop("interval", 5.0), ss=kw.pop("ss", 0.0),
                 t=kw.pop("t", None), max_gap=kw.pop("max_gap", 10.0))
    out = []
    conv = None
    for offset, frame in sample(str(path), s, **kw):
        if conv is None:
            conv = Converter([], frame.width, frame.height)
        out.append((offset, read_index(frame.to_ndarray(format="rgb24"))))
    return out


@pytest.mark.parametrize("name", ["num10_gop25", "num10_gop60_30fps", "num20_gop250"])
def test_keyframe_offsets_are_keyframe_pts(vids, name):
    # CONTRACT §2: mode 1 offsets come from the frames' pts
    path = vids[name]
    got = run(path, mode=1)
    assert [o for o, _ in got] == keyframe_offsets(path)
    fps = 30 if "30fps" in name else 25
    for offset, index in got:  # and each is the frame shown at that time
        assert index == round(offset * fps / 1000)


@pytest.mark.parametrize("name", ["num10_gop25", "num10_bf3", "num30_gop300", "num10_bf3_trim"])
def test_index_keyframe_times_are_presentation_times(vids, name):
    # MP4 indexes decode times, a reorder delay ahead of the pictures: a split or seek planned from them
    # lands one GOP early (the chunked decoder paid 35 ms of CPU a chunk for it)
    path = vids[name]
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        got = [int(round(t * 1000)) for t in keyframe_times(st, Clock(st))]
    assert got == keyframe_offsets(path)


def test_matroska_index_is_read_at_open(vids):
    # Matroska reads its Cues at the first seek: without one at open the index held the first keyframe
    # alone, and sparse sampling never sought (a whole 720p MKV decoded for 7 frames, 5x the MP4's CPU)
    path = vids["num10_mkv"]
    with FileSource(str(path)).open() as video:
        got = [int(round(t * 1000)) for t in keyframe_times(video.stream, Clock(video.stream))]
    assert len(got) > 1 and got == keyframe_offsets(path)


@pytest.mark.parametrize(
    "name,interval,fps",
    [
        ("num10_gop25", 1.0, 25),   # sparse: seeks
        ("num10_gop25", 0.3, 25),   # dense: decodes forward
        ("num10_gop25", 2.5, 25),
        ("num20_gop250", 5.0, 25),  # long GOP
        ("num20_gop250", 0.7, 25),
        ("num10_gop60_30fps", 0.45, 30),
    ],
)
def test_interval_offsets_and_frames(vids, name, interval, fps):
    # CONTRACT §2: mode 0 offsets are exactly round(k·interval·1000) and show the frame at that time
    path = vids[name]
    seconds = 20 if "20" in name else 10
    got = run(path, mode=0, interval=interval)
    n = math.ceil(seconds / interval - 1e-9)
    assert [o for o, _ in got] == [int(round(k * interval * 1000)) for k in range(n)]
    for k, (_, index) in enumerate(got):
        assert index == min(math.floor(k * interval * fps + 1e-6), seconds * fps - 1)


def test_interval_window_ss_t(vids):
    got = run(vids["num10_gop25"], mode=0, interval=1.0, ss=2.1, t=3.0)
    assert [o for o, _ in got] == [3000, 4000, 5000]
    assert [i for _, i in got] == [75, 100, 125]


def test_keyframe_window_ss_t(vids):
    path = vids["num10_gop25"]
    got = run(path, mode=1, ss=2.5, t=4.0)
    want = [o for o in keyframe_offsets(path) if 2500 <= o < 6500]
    assert [o for o, _ in got] == want == [3000, 4000, 5000, 6000]


def test_keyframe_gap_fallback(vids):
    # CONTRACT §2: keyframes every 12 s, max gap 5 s → extra exact frames so no gap exceeds 5 s
    path = vids["num30_gop300"]
    got = run(path, mode=1, max_gap=5.0)
    offsets = [o for o, _ in got]
    keys = keyframe_offsets(path)
    assert set(keys) <= set(offsets)
    assert offsets == sorted(offsets)
    assert max(b - a for a, b in zip(offsets, offsets[1:])) <= 5000
    assert 30000 - offsets[-1] <= 5000
    for offset, index in got:
        assert index == round(offset * 25 / 1000)


def test_window_past_the_end_is_empty_not_an_error(vids):
    assert run(vids["num10_gop25"], mode=0, interval=1.0, ss=50) == []


@pytest.mark.parametrize(
    "interval,ss,t,duration,want",
    [
        (5.0, 0.0, None, 12.0, [0, 5000, 10000]),
        (0.1, 0.0, None, 0.35, [0, 100, 200, 300]),
        (0.3, 0.0, None, 1.0, [0, 300, 600, 900]),
        (2.0, 3.0, 4.0, 100.0, [4000, 6000]),
        (1.0, 0.0, None, None, None),  # unknown length: unbounded generator
    ],
)
def test_interval_targets_table(interval, ss, t, duration, want):
    gen = interval_targets(Sampling(mode=0, interval=interval, ss=ss, t=t), duration)
    if want is None:
        assert [o for o, _ in (next(gen) for _ in range(3))] == [0, 1000, 2000]
    else:
        assert [o for o, _ in gen] == want


def test_max_frames_spreads_samples_evenly():
    got = [o for o, _ in interval_targets(Sampling(mode=0, interval=0.1, ss=0.0, t=None), 600.0, 3000)]
    assert len(got) <= 3000 and got[0] == 0 and got[-1] > 599000 - 300
    steps = {b - a for a, b in zip(got, got[1:])}
    assert max(steps) - min(steps) <= 1


def test_converter_sizes():
    from argus_core.media.renditions import FrameSpec

    conv = Converter([FrameSpec(224, 224), FrameSpec(416, 416, "contain"), FrameSpec(max_side=640)], 1920, 1080)
    assert conv.sizes == [(224, 224), (416, 234), (640, 360)]


def _decoded_indices(path, interval: float, threads: bool) -> tuple[list[int], list[int], int]:
    """Frames `decode_needed` lets through (as (pts ms, index)), the frame each grid target shows among
    them, and how many frames the file has."""
    import av

    from argus_core.media.sampler import Clock, Grid, decode_needed

    with av.open(str(path)) as c:
        total = sum(1 for _ in c.decode(video=0))
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        if threads:
            st.thread_type = "AUTO"
        clock = Clock(st)
        grid = Grid(Sampling(mode=0, interval=interval, ss=0.0, t=None), 10.0)
        got = sorted((clock.seconds(f), read_index(f.to_ndarray(format="rgb24")))
                     for f in decode_needed(c, st, clock, grid))
    shown = []
    for _, target, _who in grid:
        before = [i for t, i in got if t <= target + 1e-6]
        shown.append(before[-1] if before else -1)
    return [i for _, i in got], shown, total


@pytest.mark.parametrize("name", ["num10_gop25", "num10_bf3", "num10_bf0", "num10_ts", "num10_mkv"])
@pytest.mark.parametrize("interval", [0.04, 0.12, 0.3, 1.0])
@pytest.mark.parametrize("threads", [False, True])
def test_decode_needed_keeps_every_shown_frame(vids, name, interval, threads):
    # Skipping non-reference frames must never change which frame a target shows.
    decoded, shown, total = _decoded_indices(vids[name], interval, threads)
    assert shown == [math.floor(k * interval * 25 + 1e-6) for k in range(len(shown))]
    assert decoded == sorted(set(decoded))
    if name == "num10_bf0" or interval <= 0.04:
        assert len(decoded) == total  # every frame is a reference, or every frame is shown
    else:
        assert len(decoded) < total * 0.8  # B-frames nobody sees were dropped


@pytest.mark.parametrize("interval", [0.12, 0.5])
def test_interval_sampling_on_mpegts(vids, interval):
    got = run(vids["num10_ts"], mode=0, interval=interval)
    assert [i for _, i in got] == [math.floor(k * interval * 25 + 1e-6) for k in range(len(got))]
    assert len(got) == math.ceil(10 / interval - 1e-9)


@pytest.mark.parametrize("interval,ss", [(1.0, 3.0), (2.5, 0.5), (1.0, 7.0),
                                         (2.9, 0.0), (0.5, 9.2), (1.0, 8.5)])  # last: past the last keyframe
def test_mpegts_seeks_never_show_a_later_frame(vids, interval, ss):
    # MPEG-TS seeks land on the keyframe after the target; the sampler must step back, not show a later one
    got = run(vids["num10_ts"], mode=0, interval=interval, ss=ss)
    k0 = math.ceil(ss / interval - 1e-9)
    assert [o for o, _ in got] == [int(round(k * interval * 1000)) for k in range(k0, math.ceil(10 / interval))]
    assert [i for _, i in got] == [math.floor(o * 25 / 1000 + 1e-6) for o, _ in got]


def test_skipping_survives_seeks(vids, monkeypatch):
    # A decoder generator abandoned at a seek once reset FFmpeg's skip_frame behind the next one's back,
    # so non-reference frames after the seek were decoded again. Every frame the decoder outputs must be
    # a reference frame or one that a target shows, but for a few around the shown ones.
    import av

    import argus_core.media.sampler as sampler

    path = vids["num20_gop250"]
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        st.codec_context.skip_frame = "NONREF"
        references = {f.pts for f in c.decode(st)}
    out = []
    real = sampler._decode_packet

    def counting(stream, packet):
        for frame in real(stream, packet):
            out.append(frame.pts)
            yield frame

    monkeypatch.setattr(sampler, "_decode_packet", counting)
    s = Sampling(mode=0, interval=2.5, ss=0.0, t=None, max_gap=10.0)
    shown = [f.pts for _, f in sample(str(path), s)]  # keyframes at 0 and 10 s: one seek
    assert len(shown) == 8 and len(references) < 400
    # besides those, only the B-frames that push a shown frame out where decoding stops: before the seek
    # at 10 s and at the end, ≤ 2 each (bf=2)
    extra = set(out) - references - set(shown)
    assert len(extra) <= 4, sorted(extra)
