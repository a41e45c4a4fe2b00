"""Engine end to end on real footage made from real photos, with the real pulp model."""

from __future__ import annotations

import json
import time

import pytest

from argus_core import Engine, JobFinished, OpFinished, Progress, SegmentClosed
from argus_core.errors import ArgusError

from .videos import keyframe_offsets


@pytest.fixture(scope="module")
def engine():
    with Engine(decoders=1, workers=1) as e:
        yield e


def req(path, vframe=None, op_params=None, **params):
    return {"data": {"uri": str(path)}, "params": {"vframe": vframe or {}, **params},
            "ops": [{"op": "pulp", "params": op_params or {}}]}


def test_pulp_normal_on_photos_keyframes(engine, vids):
    path = vids["photos"]
    out = engine.analyze(req(path))
    segs = out["pulp"]["segments"]
    assert len(segs) == 1
    cuts = segs[0]["cuts"]
    assert [c["offset"] for c in cuts] == keyframe_offsets(path)  # CONTRACT §2
    for c in cuts:
        r = c["result"]
        assert r["label"] == 2 and r["score"] >= 0.5 and r["review"] == (r["score"] < 0.6)
        assert {x["class"] for x in r["confidences"]} == {"porn", "sexy", "normal"}
        assert abs(sum(x["score"] for x in r["confidences"]) - 1) < 1e-3
    assert [l["label"] for l in out["pulp"]["labels"]] == ["2"]
    assert out["pulp"]["labels"][0]["score"] == max(c["result"]["score"] for c in cuts)


def test_pulp_interval_offsets(engine, vids):
    out = engine.analyze(req(vids["photos"], {"mode": 0, "interval": 1.5}))
    cuts = [c["offset"] for s in out["pulp"]["segments"] for c in s["cuts"]]
    assert cuts == [round(k * 1500) for k in range(10)]  # 15 s video


def test_filters_that_drop_everything_give_empty_lists(engine, vids):
    out = engine.analyze(req(vids["photos"], {"mode": 0, "interval": 2},
                             {"labels": [{"label": "2", "select": 1}]}))
    assert out == {"pulp": {"labels": [], "segments": []}}


def test_terminate_stops_decoding_early(engine, vids):
    path = vids["photos_long"]  # 60 s
    before = engine.stats()["decoded"]
    job = engine.submit(req(path, {"mode": 0, "interval": 0.2},
                            {"terminate": {"mode": 1, "labels": {"2": 3}}}))
    events = list(job.events(timeout=60))
    final = events[-1]
    assert isinstance(final, JobFinished) and final.error is None
    cuts = [c for s in final.result["pulp"].segments for c in s.cuts]
    assert [c.offset for c in cuts] == [0, 200, 400]
    assert any(isinstance(e, OpFinished) and e.terminated for e in events)
    deadline = time.monotonic() + 10
    while engine.stats()["decoders_busy"] and time.monotonic() < deadline:
        time.sleep(0.05)
    decoded = engine.stats()["decoded"] - before
    # 300 frames in the video; the decoder stops within a ring's worth of the third frame
    assert decoded <= 3 + engine.stats()["slots"] + 2 < 300


def test_events_stream(engine, vids):
    job = engine.submit(req(vids["photos"], {"mode": 0, "interval": 0.5}))
    events = list(job.events(timeout=60))
    kinds = [type(e) for e in events]
    assert kinds[-1] is JobFinished and kinds.count(JobFinished) == 1
    assert kinds.index(OpFinished) > kinds.index(SegmentClosed)
    seg_events = [e.segment for e in events if isinstance(e, SegmentClosed)]
    assert seg_events == events[-1].result["pulp"].segments
    assert json.loads(json.dumps(job.result()))["pulp"]["segments"][0]["offset_begin"] == 0
    assert all(0 <= e.percent <= 100 for e in events if isinstance(e, Progress) and e.percent is not None)


def test_concurrent_jobs_get_the_same_results(engine, vids):
    body = req(vids["photos"], {"mode": 0, "interval": 0.5})
    alone = engine.analyze(body)
    jobs = [engine.submit(body) for _ in range(3)]
    assert all(j.result(timeout=120) == alone for j in jobs)


def test_cancel(engine, vids):
    job = engine.submit(req(vids["photos_long"], {"mode": 0, "interval": 0.1}))
    job.cancel()
    final = job.wait(timeout=10)
    assert final.cancelled and final.error.status == 499
    with pytest.raises(ArgusError):
        job.result()
    # the engine still works afterwards
    assert engine.analyze(req(vids["photos"], {"mode": 0, "interval": 5}))["pulp"]["segments"]


def test_stop_ends_early_with_what_it_has(engine, vids):
    """Job.stop(): decoding stops, the frames already decoded are analysed and the open segment closes; the
    job ends with a result that is a prefix of the whole video's (the live CLI's Ctrl-C, issue 12)."""
    from argus_core.events import Progress

    body = req(vids["photos_long"], {"mode": 0, "interval": 0.04})
    whole = engine.analyze(body)["pulp"]["segments"]
    job = engine.submit(body)
    for ev in job.events(timeout=60):
        if isinstance(ev, Progress) and ev.frames > 0:
            job.stop()
            break
    final = job.wait(timeout=30)
    assert final.error is None and not final.cancelled
    got = job.result()["pulp"]["segments"]
    cuts = [c["offset"] for s in got for c in s["cuts"]]
    all_cuts = [c["offset"] for s in whole for c in s["cuts"]]
    # (how far decoding got before the stop landed depends on the machine; cancel() would give no result)
    assert 0 < len(cuts) <= len(all_cuts) and cuts == all_cuts[:len(cuts)]
    assert got[:-1] == whole[:len(got) - 1]  # closed segments as in the whole run; the last one cut short
    assert engine.analyze(req(vids["photos"], {"mode": 0, "interval": 5}))["pulp"]["segments"]


def test_results_identical_for_any_process_count_and_batch(vids, engine):
    body = req(vids["photos_long"], {"mode": 0, "interval": 0.7})
    reference = engine.analyze(body)
    with Engine(decoders=2, workers=2, max_batch=1) as other:
        assert other.analyze(body) == reference
    with Engine(decoders=1, workers=1, max_batch=16, max_wait_ms=50) as other:
        assert other.analyze(body) == reference


def test_cpu_path_never_imports_cupy(engine):
    import sys

    from argus_core.runtime.device import CpuDevice, select_device

    assert isinstance(select_device("cpu"), CpuDevice)
    assert "cupy" not in sys.modules
    info = engine.worker_info()
    assert info and all(w["device"] == "cpu" and w["cupy_imported"] is False for w in info)


def test_http_source_and_missing_url(engine, vids, tmp_path):
    # A real HTTP server on loopback serving the file; a 404 maps to 424 (CONTRACT §2)
    import shutil

    from .media_server import MediaServer

    shutil.copy(vids["photos"], tmp_path / "v.mp4")
    with MediaServer(tmp_path) as base:
        local = engine.analyze(req(vids["photos"], {"mode": 0, "interval": 2}))
        assert engine.analyze(req(f"{base}/v.mp4", {"mode": 0, "interval": 2})) == local
        with pytest.raises(ArgusError) as err:
            engine.analyze(req(f"{base}/missing.mp4"))
        assert (err.value.status, err.value.message) == (424, "cannot find the video")
    with pytest.raises(ArgusError) as err:  # nobody listening any more
        engine.analyze(req(f"{base}/v.mp4"))
    assert (err.value.status, err.value.message) == (424, "cannot find the video")


@pytest.mark.parametrize(
    "cores,decoding,workers,forced,want",
    [
        (2, 1, 1, None, False),   # one decoder and one worker take both cores: no frame threads
        (4, 1, 1, None, None),    # spare cores: the sampler decides per file
        (16, 1, 1, None, None),   # a lone job on a big machine gets them
        (16, 15, 1, None, False), # every decoder busy: they would only steal from the others
        (16, 14, 1, None, None),
        (2, 1, 1, True, True),    # forced either way
        (16, 1, 1, False, False),
    ],
)
def test_frame_threads_rule(cores, decoding, workers, forced, want):
    from argus_core.pipeline.engine import frame_threads_rule

    assert frame_threads_rule(cores, decoding, workers, forced) is want


def test_a_flooding_job_does_not_starve_a_second_one(vids):
    """Issue 10 fairness: a job that floods the engine with frames (60 s at 0.08 s: 750 frames) does not hold a
    second, small job back until it ends — with two decoders the ring's slots are shared round-robin, so the
    small job's frames interleave with the big one's and it finishes while the big one is still running."""
    from argus_core.events import Progress

    with Engine(decoders=2, workers=1, ops=["pulp"]) as e:
        big = e.submit(req(vids["photos_long"], {"mode": 0, "interval": 0.08}))
        first = next(ev for ev in big.events(timeout=60) if isinstance(ev, Progress))  # it is flooding now
        assert first.frames < 750
        small = e.submit(req(vids["photos"], {"mode": 0, "interval": 0.5}))
        assert small.result(timeout=120)["pulp"]["segments"]
        assert not big.done, "the small job waited for the flood to end"
        assert big.result(timeout=180)["pulp"]["segments"]
