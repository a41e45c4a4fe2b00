"""Live streams end to end (issue 12) with real publishers on loopback: the ffmpeg CLI publishing a looped
clip of real photos in real time; faults injected by killing, pausing and restarting it."""

from __future__ import annotations

import threading
import time

import pytest

from argus_core import Engine
from argus_core.events import Discontinuity, JobFinished, LiveStatus, SegmentClosed

from .live_publishers import (free_port, hls_args, http_ts_args, live_clip, needs_ffmpeg, publishers,  # noqa: F401
                              rtmp_args, DirServer)

pytestmark = needs_ffmpeg


@pytest.fixture(scope="module")
def engine():
    with Engine(decoders=1, workers=1, ops=["pulp"]) as e:
        yield e


def req(uri, interval=1.0, mode=0, segment=None, **live):
    body = {"data": {"uri": uri}, "params": {"vframe": {"mode": mode, "interval": interval}, "live": live},
            "ops": [{"op": "pulp"}]}
    if segment:
        body["params"]["segment"] = segment
    return body


def collect(job, until, timeout=60.0):
    """Events of ``job`` until ``until(events)`` is true (then cancel) or the job ends."""
    events = []
    cancelled = False
    for ev in job.events(timeout=timeout):
        events.append(ev)
        if not cancelled and until(events):
            job.cancel()
            cancelled = True
    return events


def cut_offsets(events):
    return [c.offset for ev in events if isinstance(ev, SegmentClosed) for c in ev.segment.cuts]


def assert_monotonic(offsets):
    assert offsets, "no frame sampled"
    assert all(b > a for a, b in zip(offsets, offsets[1:])), f"backward or duplicate offset in {offsets}"


def n_cuts(n):
    return lambda evs: len(cut_offsets(evs)) >= n


def test_rtmp_interval_grid(engine, publishers, live_clip):
    args, url = rtmp_args(live_clip, free_port())
    publishers(args)
    job = engine.submit(req(url, interval=0.5, segment={"mode": 1, "interval": 1.0}))
    events = collect(job, n_cuts(6))
    offs = cut_offsets(events)
    assert_monotonic(offs)
    assert all(o % 500 == 0 for o in offs), offs  # mode 0: grid points of the job clock
    segs = [ev.segment for ev in events if isinstance(ev, SegmentClosed)]
    assert all(s.offset_end - s.offset_begin < 1000 for s in segs)  # segment mode 1: 1 s windows
    assert any(isinstance(ev, LiveStatus) and ev.connected for ev in events)
    assert isinstance(events[-1], JobFinished)
