"""The live media clock and the reconnect backoff (issue 12): pure logic, table tests, no sleeping."""

from __future__ import annotations

import pytest

from argus_core.media.clock import LiveClock
from argus_core.media.live import Backoff

WRAP = 2 ** 33 / 90000  # the 33-bit MPEG-TS pts wrap, in seconds (95 443.7 s)


class FakeTime:
    def __init__(self, t: float = 100.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def drive(steps, start_ms=0):
    """steps: (wall seconds since start, pts s or 'reconnect') → [(offset, discontinuity)]."""
    now = FakeTime()
    clock = LiveClock(start_ms=start_ms, now=now)
    out = []
    for wall, pts in steps:
        now.t = 100.0 + wall
        if pts == "reconnect":
            clock.reconnect()
            continue
        lt = clock.at(pts)
        out.append((lt.offset_ms, lt.discontinuity))
    return out


CASES = {
    # within a run: anchor (wall at the first frame) + (pts − first pts); the wall clock's jitter is ignored
    "steady": ([(1.5, 10.0), (1.6, 10.04), (1.9, 10.08), (1.95, 11.0)],
               [(1500, None), (1540, None), (1580, None), (2500, None)]),
    # 33-bit wrap: pts falls back by 2^33/90k → re-anchor to wall time, reported
    "ts wrap": ([(0.0, WRAP - 0.08), (0.04, WRAP - 0.04), (0.08, 0.0), (0.12, 0.04)],
                [(0, None), (40, None), (80, "pts backwards"), (120, None)]),
    # PTS reset to 0 (encoder restart): backward; wall time is behind the last offset → last + one frame
    "reset to 0, wall behind": ([(0.0, 50.0), (0.0, 52.0), (0.1, 0.0)],
                                [(0, None), (2000, None), (2040, "pts backwards")]),
    # forward jump larger than the bound (discontinuity): re-anchor at wall time
    "forward jump": ([(0.0, 1.0), (0.04, 1.04), (0.08, 300.0), (0.12, 300.04)],
                     [(0, None), (40, None), (80, "pts jump"), (120, None)]),
    # a forward step within the bound (a dropped second) keeps the stream's pace
    "small gap": ([(0.0, 1.0), (0.04, 3.0)], [(0, None), (2000, None)]),
    # a repeated pts is dropped, never a duplicate offset
    "duplicate pts": ([(0.0, 1.0), (0.04, 1.0), (0.08, 1.04)], [(0, None), (None, None), (40, None)]),
    # reconnect: the new connection's timestamps are unrelated; anchor to wall time
    "reconnect": ([(0.0, 7.0), (0.04, 7.04), (5.0, "reconnect"), (5.0, 0.5), (5.04, 0.54)],
                  [(0, None), (40, None), (5000, "reconnect"), (5040, None)]),
    # reconnect to the same timeline (an HLS playlist) still re-anchors: never trust the old run
    "reconnect same timeline": ([(0.0, 7.0), (3.0, "reconnect"), (3.0, 7.04)],
                                [(0, None), (3000, "reconnect")]),
    # resumed on another worker: the clock starts where the last one stopped and says so
    "resume": ([(0.0, 900.0), (0.04, 900.04)], [(12001, "resume"), (12041, None)]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_live_clock(name):
    steps, want = CASES[name]
    got = drive(steps, start_ms=12001 if name == "resume" else 0)
    assert got == want
    offsets = [o for o, _ in got if o is not None]
    assert offsets == sorted(set(offsets)), "never a backward or duplicate offset"


def test_live_clock_peek_does_not_change_state():
    now = FakeTime()
    clock = LiveClock(now=now)
    assert clock.peek(5.0) is None  # nothing anchored yet
    clock.at(5.0)
    assert clock.peek(5.2) == pytest.approx(0.2)
    assert clock.peek(500.0) is None  # would re-anchor
    assert clock.at(5.04).offset_ms == 40


def test_live_clock_never_goes_back_under_chaos():
    # random jumps both ways, reconnects and wall-clock stalls: offsets only ever grow
    import random

    rng = random.Random(7)
    now = FakeTime()
    clock = LiveClock(now=now)
    pts, last = 0.0, -1
    for _ in range(5000):
        now.t += rng.choice([0.0, 0.04, 0.04, 0.04, 1.0])
        r = rng.random()
        if r < 0.01:
            clock.reconnect()
        pts = pts + 0.04 if r < 0.97 else rng.choice([0.0, pts - 3, pts + 100, WRAP - 1])
        o = clock.at(pts).offset_ms
        if o is not None:
            assert o > last
            last = o


BACKOFF = {
    # consecutive failures: 1, 2, 4 … capped at 30 s (outside the fast phase: fast_s=0)
    "doubling": ({"fast_s": 0}, [("fail", 0)] * 7, [1, 2, 4, 8, 16, 30, 30]),
    # a short connection does not reset the sequence
    "flapping": ({"fast_s": 0}, [("fail", 0), ("up", 1), ("fail", 10), ("up", 12), ("fail", 20)], [1, 2, 4]),
    # a healthy minute resets it
    "healthy minute": ({"fast_s": 0}, [("fail", 0), ("fail", 1), ("fail", 3), ("up", 7), ("fail", 67)],
                       [1, 2, 4, 1]),
    # the first 30 s of an outage retry at least every 2 s, then the doubling goes on where it was
    "fast phase": ({}, [("fail", 0), ("fail", 1), ("fail", 3), ("fail", 5), ("fail", 29), ("fail", 31),
                        ("fail", 47)], [1, 2, 2, 2, 2, 30, 30]),
    # a connection that came up starts a new outage (and its fast phase) when it drops
    "new outage": ({}, [("fail", 0), ("fail", 40), ("up", 45), ("fail", 50), ("fail", 51)], [1, 2, 2, 2]),
}


@pytest.mark.parametrize("name", list(BACKOFF))
def test_backoff(name):
    kw, steps, want = BACKOFF[name]
    b = Backoff(rand=lambda: 0.5, **kw)  # no jitter at the middle of the range
    got = []
    for what, t in steps:
        if what == "up":
            b.connected(t)
        else:
            got.append(b.failed(t))
    assert got == pytest.approx(want)


@pytest.mark.parametrize("r,factor", [(0.0, 0.8), (1.0, 1.2)])
def test_backoff_jitter_bounds(r, factor):
    b = Backoff(rand=lambda: r, fast_s=0)
    assert b.failed(0) == pytest.approx(1.0 * factor)
    assert b.failed(0) == pytest.approx(2.0 * factor)
    for _ in range(10):
        d = b.failed(0)
    assert d <= 30.0  # jitter never exceeds the cap
