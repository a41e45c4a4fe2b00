"""Issue 10: nothing a request carries stops the engine or harms another job.

Numeric bounds up front (CONTRACT §1–§2 messages), the sampler and aggregators bounded again for embedders,
each op's ``params.other`` checked at submit, an op failure on a mixed batch confined to the job that caused it,
an exception inside the coordinator confined to its job, and keyframe sampling capped by ``max_frames``.
"""

from __future__ import annotations

import math
import threading

import pytest

from argus_core import Engine
from argus_core.aggregate import OpAggregator, aggregate
from argus_core.errors import ArgusError, InvalidRequest
from argus_core.media.renditions import Frame
from argus_core.media.sampler import Grid, sample
from argus_core.ops import create_op
from argus_core.pipeline.coordinator import Cancel
from argus_core.pipeline.worker import infer_batch
from argus_core.request import OpParams, Sampling, SegmentParams, bounded, parse_request
from argus_core.result import CutIn, CutOutput

OPS = {"pulp", "ocr"}


def body(vframe=None, segment=None, live=None, ops=None):
    params = {}
    if vframe is not None:
        params["vframe"] = vframe
    if segment is not None:
        params["segment"] = segment
    if live is not None:
        params["live"] = live
    return {"data": {"uri": "http://example.com/v.mp4"}, "params": params, "ops": ops or [{"op": "pulp"}]}


INTERVAL = "invalid interval, allow interval is [0, 10]"
NUMBER_CASES = [
    ("t 1e308 mode 0", body({"mode": 0, "t": 1e308}), "invalid duration"),
    ("t 2e305 mode 0", body({"mode": 0, "t": 2e305}), "invalid duration"),
    ("t 1e308 mode 1", body({"mode": 1, "t": 1e308}), "invalid duration"),
    ("t nan", body({"mode": 0, "t": math.nan}), "invalid duration"),
    ("ss 1e15", body({"mode": 0, "ss": 1e15}), "invalid starttime"),
    ("ss 1e15 keyframes", body({"ss": 1e15}), "invalid starttime"),
    ("ss inf", body({"mode": 0, "ss": math.inf}), "invalid starttime"),
    ("ss nan", body({"mode": 0, "ss": math.nan}), "invalid starttime"),
    ("interval 1e-300", body({"mode": 0, "interval": 1e-300}), INTERVAL),
    ("interval 1e-4", body({"mode": 0, "interval": 1e-4}), INTERVAL),
    ("interval nan", body({"mode": 0, "interval": math.nan}), INTERVAL),
    ("segment interval 1e308", body(segment={"mode": 1, "interval": 1e308}), "invalid parameters"),
    ("segment interval 1e-300", body(segment={"mode": 1, "interval": 1e-300}), "invalid parameters"),
    ("segment interval 1e308 mode 0", body(segment={"mode": 0, "interval": 1e308}), "invalid parameters"),
    ("live timeout 1e308", body(live={"timeout": 1e308}), "invalid parameters"),
    ("live timeout -1", body(live={"timeout": -1}), "invalid parameters"),
    ("terminate 1e20", body(ops=[{"op": "pulp", "params": {"terminate": {"mode": 1, "labels": {"0": 10**20}}}}]),
     "invalid parameters"),
]


@pytest.mark.parametrize("name,raw,message", NUMBER_CASES, ids=[c[0] for c in NUMBER_CASES])
def test_numeric_bounds_refused_with_documented_message(name, raw, message):
    with pytest.raises(ArgusError) as err:
        parse_request(raw, OPS)
    assert (err.value.status, err.value.message) == (400, message)
    assert err.value.detail  # the reason, for the client (CONTRACT §14)


def test_numbers_at_the_bounds_still_pass():
    req = parse_request(body({"mode": 0, "interval": 0.001, "ss": 1e8, "t": 1e8},
                             segment={"mode": 1, "interval": 1e8}, live={"timeout": 30}), OPS)
    assert (req.params.vframe.interval, req.params.vframe.ss, req.params.vframe.t) == (0.001, 1e8, 1e8)


EXTREME = [Sampling(0, 1e-300, 0.0, None), Sampling(0, 1e-300, 1e15, None), Sampling(0, 5.0, 1e15, 1e308),
           Sampling(0, 1e308, 2e305, 2e305), Sampling(0, math.nan, math.nan, math.nan), Sampling(0, 0.0, 0.0, None),
           Sampling(1, 5.0, 1e308, 1e308, max_gap=1e308)]


@pytest.mark.parametrize("s", EXTREME, ids=[repr(s) for s in EXTREME])
def test_grid_survives_values_an_embedder_passes(s):
    for duration in (None, 10.0):
        for max_frames in (0, 3000):
            g = Grid(s, duration, max_frames)
            first = [item for _, item in zip(range(3), g)]
            assert all(isinstance(o, int) and math.isfinite(t) for o, t, _ in first)
            g.at_or_after(5.0), g.after(5.0)
    b = bounded(s)
    assert all(math.isfinite(x) for x in (b.interval, b.ss, b.max_gap)) and (b.t is None or math.isfinite(b.t))


@pytest.mark.parametrize("interval", [1e308, 1e-300, math.inf, math.nan, 0.0])
def test_aggregation_survives_any_segment_window(interval):
    cuts = [{"offset": o, "labels": [{"label": "a", "score": 0.9}], "result": {}} for o in (0, 1000, 2000)]
    out = aggregate(cuts, {}, SegmentParams(mode=1, interval=interval))
    assert sum(len(s["cuts"]) for s in out["segments"]) == 3
    OpAggregator(OpParams(), SegmentParams(mode=1, interval=interval)).add(
        CutIn(offset=0, labels=[], result={}))


# -- params.other, checked at submit -------------------------------------------------------------------------
OTHER_CASES = [
    ("ocr", {"min_score": "abc"}), ("ocr", {"min_score": math.inf}), ("ocr", {"min_score": 2}),
    ("ocr", {"keywords": 5}), ("ocr", {"keywords": [1, 2]}), ("ocr", {"keywords": {"a": 1}}),
    ("pulp", {"cross_check": "maybe"}), ("pulp", {"cross_check": [1]}),
    ("detection", {"threshold": "high"}), ("detection", {"threshold": True}), ("detection", {"model": "yolov8"}),
    ("detection", {"model": 1}),
    ("image_label", {"topk": 2.5}), ("image_label", {"topk": "3"}), ("image_label", {"topk": 10**400}),
    ("terror", {"detail": "bogus"}), ("terror_detect", {"threshold": -0.1}),
    ("face_group_search", {"group": 7}), ("face_group_search", {"threshold": "x"}), ("politician", {"threshold": []}),
]


@pytest.mark.parametrize("op,other", OTHER_CASES, ids=[f"{o}-{next(iter(v))}" for o, v in OTHER_CASES])
def test_bad_op_params_refused_at_submit(op, other):
    with pytest.raises(InvalidRequest) as err:
        create_op(op).check_params(OpParams(other=other))
    assert err.value.message == "invalid parameters"
    assert f"params.other.{next(iter(other))}" in err.value.detail


@pytest.mark.parametrize("op,other", [
    ("ocr", {"min_score": 0.7, "keywords": ["news"]}), ("ocr", {"keywords": "news"}), ("ocr", {"unknown": "x"}),
    ("pulp", {"cross_check": "yes"}), ("image_label", {"topk": 3, "threshold": 0.2}),
    ("terror", {"detail": True, "threshold": 0.5}), ("face_group_search", {"group": "staff"}),
    ("ocr", {"min_score": None}), ("detection", {"model": "centernet", "threshold": 0.5}),
    ("detection", {"model": "nanodet"}),
])
def test_good_op_params_pass(op, other, tmp_path):
    options = {}
    if op == "face_group_search":  # the group must exist too (tests/test_face_group_params.py)
        from argus_core.faces.gallery import GalleryStore

        GalleryStore(tmp_path).create_group(other["group"])
        options = {"galleries_dir": str(tmp_path)}
    if op == "detection":  # CenterNet is there only when the operator turns it on
        options = {"detection_centernet": True}
    create_op(op, None, options).check_params(OpParams(other=other))


# -- an op failure on a mixed batch -------------------------------------------------------------------------
class _Boom(Exception):
    pass


def _frames(n: int) -> list[Frame]:
    return [Frame(offset=i * 1000, src_w=64, src_h=48, views={}) for i in range(n)]


class _Real:
    """Wraps a real op's ``infer`` as a fault injection: it raises on a batch holding a poisoned job's frame
    (as ocr's ``float("abc")`` did) and otherwise returns the real op's outputs."""

    def __init__(self, real, poisoned: set[int]) -> None:
        self.real, self.poisoned, self.calls = real, poisoned, []

    def infer(self, frames, params):
        self.calls.append(len(frames))
        if any(p.other.get("poison") for p in params):
            raise _Boom("bad parameter")
        return [CutOutput(labels=[], result={"offset": f.offset}) for f in frames]


def test_op_failure_on_a_mixed_batch_fails_only_the_offending_job():
    op = _Real(None, {2})
    params = {1: {"x": OpParams()}, 2: {"x": OpParams(other={"poison": True})}, 3: {"x": OpParams()}}
    keys = [1, 2, 3, 1, 2, 3]
    outputs, errors = infer_batch({"x": op}, _frames(6), keys, [("x",)] * 6, lambda k, n: params[k][n])
    assert [e is not None for e in errors] == [k == 2 for k in keys]
    assert all(outputs[i]["x"].result == {"offset": i * 1000} for i, k in enumerate(keys) if k != 2)
    assert errors[1].message == "inference failed: x"
    assert op.calls[0] == 6 and sorted(op.calls[1:]) == [2, 2, 2]  # one retry per job, only after a failure


def test_a_batch_of_one_job_fails_without_retry_and_a_missing_op_is_an_error():
    op = _Real(None, {2})
    outputs, errors = infer_batch({"x": op}, _frames(2), [2, 2], [("x",), ("x",)],
                                  lambda k, n: OpParams(other={"poison": True}))
    assert all(e is not None for e in errors) and op.calls == [2]
    outputs, errors = infer_batch({}, _frames(2), [1, 2], [("y",), ()], lambda k, n: OpParams())
    assert errors[0] is not None and errors[1] is None and outputs[1] == {}


# -- the engine ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def engine():
    with Engine(decoders=1, workers=1, ops=["pulp"]) as e:
        yield e


def _req(path, vframe=None, **op_params):
    return {"data": {"uri": str(path)}, "params": {"vframe": vframe or {"mode": 0, "interval": 1}},
            "ops": [{"op": "pulp", "params": op_params}]}


def test_engine_refuses_bad_numbers_and_keeps_serving(engine, vids):
    for _, raw, message in NUMBER_CASES:
        raw = dict(raw, data={"uri": str(vids["num10_gop25"])})
        with pytest.raises(ArgusError) as err:
            engine.submit(raw)
        assert err.value.message == message
    with pytest.raises(InvalidRequest):
        engine.submit(_req(vids["num10_gop25"], other={"cross_check": "maybe"}))
    assert engine.healthy
    assert len(engine.analyze(_req(vids["num10_gop25"]), timeout=60)["pulp"]["segments"]) >= 1


def test_an_exception_inside_the_coordinator_fails_only_its_job(engine, vids, monkeypatch):
    coord = engine._coord
    real = coord.aggregate
    poisoned: set[int] = set()
    hit = threading.Event()

    def aggregate_with_fault(st, offset, outputs):  # fault injection inside the coordinator thread
        if st.key in poisoned:
            hit.set()
            raise RuntimeError("injected fault")
        return real(st, offset, outputs)

    monkeypatch.setattr(coord, "aggregate", aggregate_with_fault)
    good_body = _req(vids["num10_gop25"])
    expected = engine.analyze(good_body, timeout=60)
    bad = engine.submit(_req(vids["num10_gop25"], {"mode": 0, "interval": 0.5}))
    poisoned.add(bad.key)
    good = engine.submit(good_body)
    final = bad.wait(timeout=60)
    assert hit.is_set()
    assert final.error is not None and (final.error.status, final.error.message) == (500, "internal error")
    assert good.result(timeout=60) == expected
    assert engine.healthy and coord.alive
    assert engine.analyze(good_body, timeout=60) == expected  # still serving afterwards


def test_keyframe_mode_is_capped_by_max_frames(vids):
    path = vids["num10_gop25"]  # 10 s, a keyframe every second
    every = list(sample(str(path), Sampling(1, 5.0, 0.0, None, max_gap=10.0)))
    assert len(every) >= 10
    capped = list(sample(str(path), Sampling(1, 5.0, 0.0, None, max_gap=10.0), max_frames=4))
    assert [o for o, _ in capped] == [o for o, _ in every[:4]]


# -- health tells the truth ----------------------------------------------------------------------------------
def _wait(pred, timeout=60.0):
    import time

    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_health_follows_the_inference_worker(engine, vids):
    import os
    import signal

    assert engine.health()["ok"] and engine.healthy
    pid = engine.child_pids()["workers"][0]
    os.kill(pid, signal.SIGKILL)
    _wait(lambda: not engine.health()["ok"], 10)  # dead, then restarting: not ready
    _wait(lambda: engine.health()["ok"] and engine.child_pids()["workers"][0] != pid, 120)
    assert engine.analyze(_req(vids["num10_gop25"]), timeout=60)["pulp"]["segments"]


def test_health_fails_when_the_coordinator_is_gone(vids):
    e = Engine(decoders=1, workers=1, ops=["pulp"])
    try:
        assert e.health()["ok"]

        def broken_schedule():  # fault injection: a bug outside any one job ends the coordinator loop
            raise RuntimeError("injected coordinator failure")

        e._coord.schedule = broken_schedule
        e._coord.post(Cancel(0))  # wakes the loop, which then schedules
        _wait(lambda: not e._coord.alive, 10)
        h = e.health()
        assert not h["ok"] and not h["coordinator"] and not e.healthy
        with pytest.raises(ArgusError):
            e.submit(_req(vids["num10_gop25"]))
    finally:
        e.close()
