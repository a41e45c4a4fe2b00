"""A cut put on its exact frame (issue 11): from the frames the pass decoded anyway where the window between
two taps is complete (``run._Tapper``), else by decoding the window again (``run._Refiner``). Both must give
the same frame; the first must actually be used; and times count from the stream's start (MPEG-TS starts
near 1.4 s), in the older two-pass driver too."""

from __future__ import annotations

import subprocess

import pytest

from argus_core.abstract import run
from argus_core.abstract.drive import detect_shots
from tests.data import footage_or_skip


@pytest.mark.parametrize("pts,step,want", [
    ([0, 512, 1024, 1536], 512, True),       # one frame after another
    ([0, 512, 1025], 512, True),             # a tick of rounding
    ([0, 512, 1536], 512, False),            # a frame between 512 and 1536 was skipped
    ([0, 256, 512], 512, False),             # closer than a frame: not this stream's pace
    ([0], 512, False),                       # one frame is no window
    ([0, 512], 0, False),                    # no declared constant rate
    ([0, 1, 2, 3], 1, True),                 # a frame is one tick (AVI; MP4 with a time base of 1/fps) ...
    ([0, 2], 1, False),                      # ... so a gap of 2 is a skipped frame, not rounding
    ([0, 1, 1], 1, False),                   # a repeated pts
])
def test_consecutive(pts, step, want):
    assert run.consecutive(pts, step) is want


class _Counting:
    """Counts the cuts refined by decoding."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.n = 0
        real = run._Refiner.refine

        def refine(refiner, b):
            self.n += 1
            return real(refiner, b)
        monkeypatch.setattr(run._Refiner, "refine", refine)


def _cuts(a: run.Analysis) -> list[int]:
    return [b.time_ms for b in a.boundaries if b.type == "cut"]


@pytest.fixture(scope="module")
def mixed_avi(mixed, tmp_path_factory):
    """The same pictures as MPEG-4 Part 2 with B-frames in AVI: a frame lasts one tick of the time base."""
    out = tmp_path_factory.mktemp("avi") / "mixed.avi"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mixed.path), "-c:v", "mpeg4", "-bf", "2", "-q:v", "5",
                    "-an", str(out)], check=True)
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_a_skipped_b_frame_in_a_one_tick_time_base_is_not_taken_for_rounding(mixed_avi, workers, monkeypatch):
    opts = run.Options(features=False, decode_workers=workers)
    from_pass = run.analyse(str(mixed_avi), opts)
    monkeypatch.setattr(run, "consecutive", lambda pts, step: False)
    assert from_pass.boundaries == run.analyse(str(mixed_avi), opts).boundaries


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("name", ["mixed", "Megamind"])
def test_cuts_from_the_pass_are_the_cuts_from_decoding(name, workers, mixed, monkeypatch):
    path = str(mixed.path) if name == "mixed" else str(footage_or_skip("Megamind"))
    opts = run.Options(features=False, decode_workers=workers)
    counting = _Counting(monkeypatch)
    from_pass = run.analyse(path, opts)
    decoded_again = counting.n
    monkeypatch.setattr(run, "consecutive", lambda pts, step: False)   # every window incomplete
    counting.n = 0
    from_decoding = run.analyse(path, opts)
    assert counting.n >= len(_cuts(from_decoding)) >= 3   # a cut the detector took back is refined too
    assert decoded_again < counting.n, "no cut was refined from the pass's own frames"
    assert from_pass.boundaries == from_decoding.boundaries
    if name == "Megamind":   # one dinner scene in 4 shots: cuts at 4.129, 6.465, 8.383 s (the issue)
        assert [abs(c - t) <= 42 for c, t in zip(_cuts(from_pass), (4129, 6465, 8383))] == [True] * 3


def test_refined_cut_times_count_from_the_stream_start(mixed, tmp_path, monkeypatch):
    ts = tmp_path / "mixed.ts"   # the same pictures in MPEG-TS, whose timestamps start near 1.4 s
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mixed.path), "-c", "copy", "-f", "mpegts", str(ts)],
                   check=True)
    want = _cuts(run.analyse(str(mixed.path), run.Options(features=False)))
    two_pass = [b.time_ms for b in detect_shots(str(ts), 0.1).boundaries if b.type == "cut"]
    assert len(two_pass) == len(want) and all(abs(g - w) <= 40 for g, w in zip(two_pass, want)), (two_pass, want)
    for complete in (True, False):   # from the pass, then by decoding
        if not complete:
            monkeypatch.setattr(run, "consecutive", lambda pts, step: False)
        got = _cuts(run.analyse(str(ts), run.Options(features=False)))
        assert len(got) == len(want) and all(abs(g - w) <= 40 for g, w in zip(got, want)), (complete, got, want)
