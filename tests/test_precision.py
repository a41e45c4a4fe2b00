"""int8 model choice (runtime/precision.py), the per-machine thread/batch rule (runtime/tuning.py), and the
shipped int8 models against their fp references on real footage."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from argus_core.runtime import precision
from argus_core.runtime.manifest import MODELS_DIR, ModelError
from argus_core.runtime.tuning import plan


# -- the thread / batch rule ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cores, workers, decoders, device, threads, batch", [
    (1, 1, 1, "cpu", 1, 8),
    (2, 1, 1, "cpu", 1, 8),     # this machine: the decoder keeps its core (measured, bench/RESULTS.md)
    (2, 1, 0, "cpu", 2, 8),     # no decoder in this process group: both cores
    (2, 2, 1, "cpu", 1, 8),
    (4, 1, 3, "cpu", 3, 8),     # 3 decoders reserve one core
    (16, 2, 8, "cpu", 7, 8),    # 16 − 2 reserved, split over 2 workers
    (64, 1, 8, "cpu", 8, 8),    # capped
    (64, 16, 8, "cpu", 3, 8),
    (8, 1, 4, "cuda", 1, 64),   # the GPU does the maths
    (0, 0, 0, "cpu", 1, 8),     # nonsense in, still runnable
])
def test_plan(cores, workers, decoders, device, threads, batch):
    t = plan(cores, workers, decoders, device)
    assert (t.threads, t.max_batch) == (threads, batch)
    assert f"{t.threads} intra-op thread" in t.describe()


# -- measures ------------------------------------------------------------------------------------------------
def test_top1_agreement():
    a = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    b = np.array([[0.7, 0.3], [0.3, 0.7], [0.4, 0.6], [0.5, 0.5]])
    assert precision.top1_agreement(a, b) == 0.75
    assert precision.top1_agreement(a[:0], b[:0]) == 1.0
    with pytest.raises(ValueError):
        precision.top1_agreement(a, b[:, :1])


@pytest.mark.parametrize("ref, got, recall, f1", [
    ([[(0, (0, 0, 10, 10))]], [[(0, (1, 1, 10, 10))]], 1.0, 1.0),          # IoU 0.81
    ([[(0, (0, 0, 10, 10))]], [[(1, (0, 0, 10, 10))]], 0.0, 0.0),          # wrong class
    ([[(0, (0, 0, 10, 10))]], [[(0, (5, 5, 15, 15))]], 0.0, 0.0),          # IoU 0.14
    ([[(0, (0, 0, 10, 10)), (0, (20, 0, 30, 10))]], [[(0, (0, 0, 10, 10))]], 0.5, 0.6667),
    # one box cannot match two references
    ([[(0, (0, 0, 10, 10)), (0, (0, 0, 10, 11))]], [[(0, (0, 0, 10, 10))]], 0.5, 0.6667),
    ([[], []], [[], [(0, (0, 0, 1, 1))]], 1.0, 0.0),
    ([[]], [[]], 1.0, 1.0),
])
def test_detection_measures(ref, got, recall, f1):
    assert precision.detection_recall(ref, got) == recall
    assert precision.detection_f1(ref, got) == f1


@pytest.mark.parametrize("kind, agreement, speedup, chosen", [
    ("classifier", {"top1_agreement": 0.995}, 1.5, True),
    ("classifier", {"top1_agreement": 0.98}, 1.5, False),
    ("classifier", {"top1_agreement": 1.0}, 1.05, False),  # not worth it
    ("detector", {"confident_recall": 0.99, "f1_at_threshold": 0.96}, 1.4, True),
    ("detector", {"confident_recall": 0.985, "f1_at_threshold": 0.99}, 1.4, False),
    ("detector", {"confident_recall": 1.0, "f1_at_threshold": 0.9403}, 1.54, False),  # nanodet_int8 as measured
    ("detector", {"confident_recall": 1.0}, 1.4, False),    # no F1 recorded: keep fp
    ("embedder", {}, 3.0, False),                            # no measure: keep fp
])
def test_choose(kind, agreement, speedup, chosen):
    assert precision.choose(kind, agreement, speedup) is chosen


# -- choosing the folder -------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, env, want", [
    ({}, None, "auto"),
    ({"precision": "INT8"}, None, "int8"),
    ({"precision": {"nanodet": "fp32"}}, None, "fp32"),
    ({"precision": {"default": "int8"}}, None, "int8"),
    ({}, "fp32", "fp32"),
    ({"precision": "int8"}, "fp32", "int8"),  # the option wins over the environment
])
def test_mode_for(monkeypatch, options, env, want):
    if env:
        monkeypatch.setenv("ARGUS_PRECISION", env)
    else:
        monkeypatch.delenv("ARGUS_PRECISION", raising=False)
    assert precision.mode_for("nanodet", options) == want


def test_mode_for_rejects_unknown():
    with pytest.raises(ValueError):
        precision.mode_for("nanodet", {"precision": "int4"})


def _models(tmp_path: Path, chosen: bool, ref_sha: str | None = None) -> Path:
    """A models folder with the real nanodet manifest and an int8 manifest beside it (no weights needed)."""
    fp = json.loads((MODELS_DIR / "nanodet" / "manifest.json").read_text())
    (tmp_path / "nanodet").mkdir()
    (tmp_path / "nanodet" / "manifest.json").write_text(json.dumps(fp))
    q = dict(fp, name="nanodet_int8",
             quantized={"chosen": chosen, "reference_sha256": ref_sha if ref_sha is not None else fp["sha256"]})
    (tmp_path / "nanodet_int8").mkdir()
    (tmp_path / "nanodet_int8" / "manifest.json").write_text(json.dumps(q))
    return tmp_path


@pytest.mark.parametrize("chosen, ref_sha, options, providers, want, fallback", [
    (True, None, {}, None, "nanodet_int8", "nanodet"),
    (False, None, {}, None, "nanodet", None),                    # rejected by measurement
    (True, "0" * 64, {}, None, "nanodet", None),                 # made from another fp file
    (True, None, {"precision": "fp32"}, None, "nanodet", None),
    (False, None, {"precision": "int8"}, None, "nanodet_int8", None),  # forced: no fallback
    (True, None, {}, [("CUDAExecutionProvider", {}), "CPUExecutionProvider"], "nanodet", None),
])
def test_pick_folder(tmp_path, monkeypatch, chosen, ref_sha, options, providers, want, fallback):
    monkeypatch.delenv("ARGUS_PRECISION", raising=False)
    root = _models(tmp_path, chosen, ref_sha)
    folder, fb = precision.pick_folder(root, "nanodet", options, providers)
    assert folder == root / want
    assert fb == (root / fallback if fallback else None)


def test_pick_folder_int8_missing(tmp_path):
    (tmp_path / "nanodet").mkdir()
    assert precision.pick_folder(tmp_path, "nanodet", {}, None) == (tmp_path / "nanodet", None)
    with pytest.raises(ModelError, match="quantize.py"):
        precision.pick_folder(tmp_path, "nanodet", {"precision": "int8"}, None)


def test_broken_int8_falls_back_under_auto(tmp_path, monkeypatch):
    """An int8 file that fails its check: ``auto`` runs the fp model, ``int8`` refuses."""
    from argus_core.ops.base import load_model

    monkeypatch.delenv("ARGUS_PRECISION", raising=False)
    if not (MODELS_DIR / "nanodet_int8").is_dir():
        pytest.skip("models/nanodet_int8 not built (models/quantize.py nanodet)")
    shutil.copytree(MODELS_DIR / "nanodet", tmp_path / "nanodet")
    shutil.copytree(MODELS_DIR / "nanodet_int8", tmp_path / "nanodet_int8")
    # a damaged int8 file: the fp model's bytes, so its outputs cannot match the int8 check
    shutil.copy(MODELS_DIR / "nanodet" / "model.onnx", tmp_path / "nanodet_int8" / "model.onnx")
    model = load_model(tmp_path, "nanodet", {}, None, 1)
    assert model.folder == tmp_path / "nanodet"
    with pytest.raises(ModelError):
        load_model(tmp_path, "nanodet", {"precision": "int8"}, None, 1)


# -- the shipped int8 models on real footage ----------------------------------------------------------------
def _shipped() -> list[str]:
    return sorted(p.parent.name[: -len(precision.INT8_SUFFIX)] for p in MODELS_DIR.glob("*_int8/manifest.json"))


@pytest.mark.parametrize("name", _shipped() or ["nanodet"])
def test_shipped_int8_agrees_on_real_footage(name):
    """The int8 file loads, passes its own check, records its choice, and on real frames (a fresh sample,
    every 0.4 s: not the calibration set) keeps the fp model's confident detections."""
    from argus_core.media.renditions import FrameSpec
    from argus_core.ops.detection import NanoDet
    from argus_core.runtime.session import Model
    from tests.data import DataUnavailable
    from tests.footage_frames import real_frames

    folder = MODELS_DIR / precision.int8_folder_name(name)
    if not folder.is_dir():
        pytest.skip(f"{folder} not built")
    q, fp = Model(folder), Model(MODELS_DIR / name)
    quant = q.manifest.quantized
    assert quant["reference"] == name
    # the recorded choice is the rule's verdict on the recorded measurements
    assert quant["chosen"] is precision.choose(q.manifest.kind, quant["agreement"], quant["speedup"])
    assert (not precision.int8_status(MODELS_DIR, name)) is quant["chosen"]
    i = fp.manifest.input
    try:
        frames = [f.frame for f in real_frames([FrameSpec(i.width, i.height, i.resize, i.max_side)],
                                               clips=("vtest", "bikes"), interval=0.4, per_clip=8)]
    except DataUnavailable as exc:
        pytest.skip(str(exc))
    if fp.manifest.kind != "detector":
        pytest.skip("only detectors ship as int8 today")
    ref = NanoDet(fp).detect(frames, [0.35] * len(frames))
    got = NanoDet(q).detect(frames, [0.35] * len(frames))
    confident = [[(d.index, d.box) for d in r if d.score >= 0.5] for r in ref]
    assert sum(map(len, confident)) >= 5  # people in vtest, cyclists in bikes: a test that can fail
    assert precision.detection_recall(confident, [[(d.index, d.box) for d in g] for g in got]) >= 0.95


def test_argus_models_shows_precision_and_threads(monkeypatch):
    """What `argus models` prints per model (precision, provider) and for the machine (threads, batch)."""
    from argus_core.catalog import catalog, runtime_plan

    monkeypatch.delenv("ARGUS_PRECISION", raising=False)
    plan_row = runtime_plan(workers=1, decoders=1)
    assert plan_row["threads"] >= 1 and "intra-op thread" in plan_row["summary"]
    rows = {r["op"]: r for r in catalog(verify=False)}
    nanodet = next(m for m in rows["detection"]["models"] if m["name"] == "nanodet")
    assert nanodet["provider"] == "CPUExecutionProvider"
    chosen = (MODELS_DIR / "nanodet_int8").is_dir() and not precision.int8_status(MODELS_DIR, "nanodet")
    assert nanodet["precision"] == ("int8" if chosen else "fp32")
    forced = {r["op"]: r for r in catalog(verify=False, options={"precision": "int8"})}
    if (MODELS_DIR / "nanodet_int8").is_dir():  # an operator may still run it
        assert next(m for m in forced["detection"]["models"] if m["name"] == "nanodet")["precision"] == "int8"
    fp = {r["op"]: r for r in catalog(verify=False, options={"precision": "fp32"})}
    assert all(m["precision"] == "fp32" for m in fp["detection"]["models"])


def test_quantize_keeps_zero_channel_and_depthwise_convs_fp32():
    """models/quantize.py's node selection on a small graph: a depthwise conv, a conv with an all-zero
    output channel (its per-channel scale would be 0 → NaN) and a plain conv."""
    import importlib.util

    from onnx import TensorProto, helper, numpy_helper

    spec = importlib.util.spec_from_file_location("argus_quantize", MODELS_DIR / "quantize.py")
    q = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(q)
    w_plain = np.ones((4, 4, 1, 1), np.float32)
    w_zero = np.ones((4, 4, 1, 1), np.float32)
    w_zero[2] = 0
    w_dw = np.ones((4, 1, 3, 3), np.float32)
    nodes = [helper.make_node("Conv", ["x", "wp"], ["a"], name="plain"),
             helper.make_node("Conv", ["a", "wz"], ["b"], name="zero"),
             helper.make_node("Conv", ["b", "wd"], ["y"], name="dw", group=4, pads=[1, 1, 1, 1])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                              [numpy_helper.from_array(w_plain, "wp"), numpy_helper.from_array(w_zero, "wz"),
                               numpy_helper.from_array(w_dw, "wd")])
    model = helper.make_model(graph)
    assert q.fp32_nodes(model) == ["zero", "dw"]
    assert q.fp32_nodes(model, depthwise=False) == ["zero"]
    assert q.edge_nodes(model) == ["dw", "plain"]


def _quantize_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("argus_quantize", MODELS_DIR / "quantize.py")
    q = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(q)
    return q


def test_calibration_images_are_padded_as_the_op_pads_them():
    """NanoDet's calibration/evaluation inputs are letterboxed with the op's pad value (114), the same
    array the op feeds the model: calibrating on 0-padded bands gave int8 ranges for inputs it never sees."""
    from argus_core.media.renditions import Frame, FrameSpec
    from argus_core.runtime.manifest import load_manifest

    q = _quantize_module()
    i = load_manifest(MODELS_DIR / "nanodet").input
    spec = FrameSpec(i.width, i.height, i.resize, i.max_side)
    view = np.random.default_rng(1).integers(0, 255, (234, 416, 3), dtype=np.uint8)  # a 16:9 frame
    frame = type("F", (), {"frame": Frame(offset=0, src_w=1280, src_h=720, views={spec: view})})()
    images = q.model_images(MODELS_DIR / "nanodet", [frame])
    assert images.shape == (1, 416, 416, 3)
    assert (images[0, 234:] == 114).all() and np.array_equal(images[0, :234], view)

    # the op's own letterboxing (argus_core.ops.detection.NanoDet.candidates)
    from argus_core.media.renditions import letterbox

    pad = int(load_manifest(MODELS_DIR / "nanodet").params.get("pad_value", 114))
    assert np.array_equal(images[0], letterbox(view, i.width, i.height, pad)[0])
