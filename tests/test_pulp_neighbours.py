"""Pulp's interval mode averages the frames at t−500, t, t+500 ms (ORIGINAL-BEHAVIOUR.md §2, "Pulp special case";
issue 9): the plan (pure, table-tested), the sampler's targets, and the engine's answer on real footage against
the op run by hand on the three frames."""

from __future__ import annotations

import numpy as np
import pytest

from argus_core import Engine
from argus_core.media.renditions import Converter, Frame
from argus_core.media.sampler import OPS, SIDE, FrameGrabber, Grid, with_neighbours
from argus_core.media.source import source_for
from argus_core.ops import create_op
from argus_core.pipeline.coordinator import sides_plan
from argus_core.pipeline.decoder import is_neighbour
from argus_core.request import Sampling, parse_request

from .data import footage_or_skip


def _req(uri: str = "/tmp/x.mp4", ops=("pulp",), other=None, **vframe):
    body = {"data": {"uri": uri}, "params": {"vframe": vframe or {"mode": 0, "interval": 1}},
            "ops": [{"op": o, "params": {"other": other or {}}} for o in ops]}
    return parse_request(body)


@pytest.fixture(scope="module")
def ops():
    return {name: create_op(name) for name in ("pulp", "image_label")}


@pytest.mark.parametrize("vframe, other, names, wanted", [
    ({"mode": 0, "interval": 1}, {}, ("pulp",), True),
    ({"mode": 0, "interval": 0.5}, {}, ("pulp",), True),          # neighbours are the next cuts' frames
    ({"mode": 0, "interval": 5}, {"ensemble": "full"}, ("pulp",), True),
    ({"mode": 0, "interval": 0.2}, {}, ("pulp",), False),         # the grid already samples them
    ({"mode": 1}, {}, ("pulp",), False),                          # keyframe mode: no aggregation (§2)
    ({"mode": 0, "interval": 1}, {"ensemble": "off"}, ("pulp",), False),  # nsfwjs alone, as before issue 9
    ({"mode": 0, "interval": 1}, {"neighbours": False}, ("pulp",), False),  # the extension's opt-out
    ({"mode": 0, "interval": 1}, {}, ("image_label",), False),     # only an op that declares neighbours
])
def test_sides_plan(ops, vframe, other, names, wanted):
    plan = sides_plan(_req(ops=names, other=other, **vframe), ops)
    assert (plan is not None) == wanted
    if wanted:
        assert plan.ms == 500 and set(plan.specs) <= set(ops["pulp"].specs())


def test_sides_plan_not_for_live(ops):
    assert sides_plan(_req("rtmp://127.0.0.1:1935/live/x"), ops) is None


@pytest.mark.parametrize("interval, expect", [
    (1.0, [(0, OPS), (500, SIDE), (1000, OPS), (1500, SIDE), (2000, OPS), (2500, SIDE)]),
    (0.5, [(0, OPS | SIDE), (500, OPS | SIDE), (1000, OPS | SIDE), (1500, OPS | SIDE), (2000, OPS | SIDE),
           (2500, SIDE)]),
    (2.0, [(0, OPS), (500, SIDE), (1500, SIDE), (2000, OPS), (2500, SIDE)]),
])
def test_targets_with_neighbours(interval, expect):
    grid = Grid(Sampling(mode=0, interval=interval, ss=0.0, t=None), duration=2.2)
    got = [(o, who) for o, _, who in with_neighbours(grid, 500)]
    assert got == expect


@pytest.mark.parametrize("offset, cut, by, yes", [
    (1500, 1000, 500, True), (1501, 1000, 500, True), (1499, 1000, 500, True), (1502, 1000, 500, False),
    (500, 1000, -500, True), (0, 1000, -500, False),
])
def test_is_neighbour(offset, cut, by, yes):
    assert is_neighbour(offset, cut, by) is yes


def _by_hand(op, path, offsets):
    """The op on frames taken one by one with FrameGrabber, as the oracle for the engine's slot."""
    grab = FrameGrabber(source_for(str(path), 30.0))
    try:
        out = {}
        for o in offsets:
            frame = grab.frame_at(o)
            conv = Converter(op.specs(), frame.width, frame.height, frame.rotation)
            out[o] = Frame(o, *conv.display, dict(zip(op.specs(), conv.convert(frame))))
        return out
    finally:
        grab.close()


@pytest.mark.slow
def test_engine_averages_the_three_frames_on_real_footage(ops):
    """bikes (real traffic footage): with ``ensemble: full`` every cut reads its neighbours; the engine's
    confidences equal the mean of the op run by hand on t−500, t, t+500 (one neighbour at t = 0)."""
    path = footage_or_skip("bikes")
    op = ops["pulp"]
    op.load()
    body = {"data": {"uri": str(path)}, "params": {"vframe": {"mode": 0, "interval": 2}},
            "ops": [{"op": "pulp", "params": {"other": {"ensemble": "full"}}}]}
    with Engine(decoders=1, workers=1, ops=["pulp"]) as engine:
        res = engine.analyze(body)
    cuts = [c for s in res["pulp"]["segments"] for c in s["cuts"]]
    assert len(cuts) >= 4
    hand = _by_hand(op, path, sorted({o for c in cuts for o in (c["offset"] - 500, c["offset"], c["offset"] + 500)
                                      if o >= 0}))
    params = parse_request(body).ops[0].params
    for c in cuts:
        t = c["offset"]
        present = [o for o in (t - 500, t, t + 500) if o in hand]
        one = op.infer([hand[o] for o in present], [params] * len(present))
        rows = [{d["class"]: d["score"] for d in x.result["confidences"]} for x in one]
        mean = {k: np.mean([r[k] for r in rows]) for k in rows[0]}
        got = {d["class"]: d["score"] for d in c["result"]["confidences"]}
        assert got == pytest.approx(mean, abs=2e-3), (t, got, mean)
        assert c["result"]["neighbours"] == len(present) - 1
    assert cuts[0]["offset"] == 0 and cuts[0]["result"]["neighbours"] == 1


@pytest.mark.slow
def test_cascade_reads_no_neighbours_where_the_frame_is_clearly_normal(ops):
    """Cost guard: on ordinary footage (vtest, pedestrians) the default cascade calls almost every frame clearly
    normal, so almost no cut runs its neighbours, and the answer is the cut's own frame."""
    path = footage_or_skip("vtest")
    body = {"data": {"uri": str(path)}, "params": {"vframe": {"mode": 0, "interval": 4, "t": 40}},
            "ops": [{"op": "pulp"}]}
    with Engine(decoders=1, workers=1, ops=["pulp"]) as engine:
        res = engine.analyze(body)
    cuts = [c for s in res["pulp"]["segments"] for c in s["cuts"]]
    assert len(cuts) == 10
    assert sum("neighbours" in c["result"] for c in cuts) <= 1
    assert all(c["result"]["label"] == 2 for c in cuts)
