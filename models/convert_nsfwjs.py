#!/usr/bin/env python3
"""Convert the nsfwjs MobileNetV2 classifier (npm ``nsfwjs``) to ONNX, keeping its uint8 weights.

Source: npm ``nsfwjs@4.3.0`` (MIT) ships a TensorFlow.js *layers* model (Keras 2.2.4 MobileNetV2 topology,
224x224x3 NHWC input, RGB/255, softmax over Drawing, Hentai, Neutral, Porn, Sexy) whose JSON and weight
shard are wrapped in UMD JavaScript modules (``dist/models/mobilenet_v2/model.min.js`` and
``group1-shard1of1.min.js``, the latter exporting the weight bytes as a base64 string). Every weight is
uint8-quantised per tensor; TF.js decodes it as ``float32(q * scale + min)`` computed in float64.

What this script does:

1. Runs ``node`` to ``require()`` the two wrappers and hands the model JSON and raw weight bytes to Python.
2. Writes the ONNX graph (opset 13) itself, layer by layer from the Keras topology, with each weight kept as
   a **uint8 initializer** followed by ``Cast(double) -> Mul(scale) -> Add(min) -> Cast(float)``: the exact
   float64 arithmetic of TF.js, so the dequantised weights are bit-identical to the ones the original
   runtime uses, and the file is a quarter of an fp32 export. onnxruntime folds these constant chains (and
   then BatchNormalization into Conv) once at session load, so inference cost is that of an fp32 model.
   Output is deterministic: re-running gives a byte-identical file.
3. Optionally (``--verify``) rebuilds the same network in Keras (TensorFlow is needed for this check only,
   never at run time), sets the dequantised weights, and compares ONNX against Keras on scikit-image's
   sample photos (single images and a batch); ``--tf2onnx`` additionally exports the Keras model through
   tf2onnx (fp32, the "standard" route) to a scratch file and compares that too; ``--tfjs DIR`` runs the
   original TF.js runtime (``@tensorflow/tfjs`` installed under DIR, CPU backend) on one photo.

ONNX model: input ``input`` float32 [N,224,224,3] (NHWC, RGB scaled to 0..1, dynamic batch N; the image
is stretched to 224x224 -- nsfwjs itself uses bilinear resize), output ``probabilities`` float32 [N,5]
softmax in label order Drawing, Hentai, Neutral, Porn, Sexy.

Reproduce (see models/nsfwjs/README.md)::

    mkdir -p /tmp/nsfw && cd /tmp/nsfw && npm pack nsfwjs@4.3.0 && tar xzf nsfwjs-4.3.0.tgz
    python models/convert_nsfwjs.py /tmp/nsfw/package --out models/nsfwjs/model.onnx [--verify] [--tf2onnx]

Conversion needs numpy + onnx (+ node on PATH); ``--verify`` also needs tensorflow-cpu, onnxruntime and
scikit-image; ``--tf2onnx`` needs tf2onnx.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LABELS = ["Drawing", "Hentai", "Neutral", "Porn", "Sexy"]
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
OPSET = 13
SIZE = 224

# Node snippet: require() the UMD wrappers and print {"model": <model JSON>, "shards": [<base64>...]}.
_EXTRACT_JS = r"""
const path = require("path");
const dir = process.argv[1];
const model = require(path.join(dir, "model.min.js"));
const shards = [];
for (const group of model.weightsManifest) {
  for (const p of group.paths) {
    const s = require(path.join(dir, p + ".min.js"));
    if (typeof s !== "string") throw new Error("unexpected shard export in " + p);
    shards.push(s);
  }
}
process.stdout.write(JSON.stringify({ model: model, shards: shards }));
"""


# --------------------------------------------------------------------------------------------- extraction
def extract(package: Path, model: str = "mobilenet_v2") -> tuple[dict, bytes]:
    """Return (model JSON, concatenated weight bytes) from the unpacked npm package."""
    folder = (package / "dist" / "models" / model).resolve()
    if not (folder / "model.min.js").is_file():
        raise SystemExit(f"no {folder}/model.min.js: pass the unpacked npm package folder")
    out = subprocess.run(["node", "-e", _EXTRACT_JS, str(folder)], check=True, capture_output=True).stdout
    data = json.loads(out)
    weights = b"".join(base64.b64decode(s) for s in data["shards"])
    return data["model"], weights


class QWeight:
    """One uint8-quantised weight: ``value = float32(float64(q) * scale + min)`` (TF.js decodeWeights)."""

    def __init__(self, name: str, shape: list[int], q: np.ndarray, scale: float, minimum: float):
        self.name, self.shape, self.q, self.scale, self.min = name, shape, q, scale, minimum

    def dequantize(self) -> np.ndarray:
        return (self.q.astype(np.float64) * self.scale + self.min).astype(np.float32)


def decode_weights(model_json: dict, blob: bytes) -> dict[str, QWeight]:
    """Split the weight bytes per the weightsManifest (order = byte order)."""
    out: dict[str, QWeight] = {}
    offset = 0
    for group in model_json["weightsManifest"]:
        for spec in group["weights"]:
            quant = spec.get("quantization")
            if spec["dtype"] != "float32" or not quant or quant["dtype"] != "uint8":
                raise SystemExit(f"unsupported weight encoding for {spec['name']}: {spec}")
            n = int(np.prod(spec["shape"], dtype=np.int64))
            q = np.frombuffer(blob, dtype=np.uint8, count=n, offset=offset).reshape(spec["shape"])
            offset += n
            out[spec["name"]] = QWeight(spec["name"], spec["shape"], q, float(quant["scale"]), float(quant["min"]))
    if offset != len(blob):
        raise SystemExit(f"weight bytes: used {offset} of {len(blob)}")
    return out


def layers_of(model_json: dict) -> list[dict]:
    topo = model_json["modelTopology"]
    cfg = topo["model_config"]
    if cfg["class_name"] not in ("Model", "Functional"):
        raise SystemExit(f"unexpected model class {cfg['class_name']}")
    return cfg["config"]["layers"]


def inbound(layer: dict) -> list[str]:
    nodes = layer["inbound_nodes"]
    if not nodes:
        return []
    if len(nodes) != 1:
        raise SystemExit(f"layer {layer['name']} is shared; not supported")
    return [n[0] for n in nodes[0]]


# --------------------------------------------------------------------------------------------- ONNX build
def _same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """TensorFlow 'same' padding (extra pixel at the end)."""
    eff = (k - 1) * d + 1
    total = max((math.ceil(size / s) - 1) * s + eff - size, 0)
    return total // 2, total - total // 2


def build_onnx(model_json: dict, weights: dict[str, QWeight], version: str = ""):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes: list = []
    inits: list = []
    used: set[str] = set()

    def const(name: str, array: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(key: str, perm: tuple[int, ...] | None = None, shape: tuple[int, ...] | None = None) -> str:
        """uint8 initializer (rearranged only: exact) + float64 dequantisation chain -> float32 tensor."""
        w = weights[key]
        used.add(key)
        q = w.q if perm is None else w.q.transpose(perm)
        if shape is not None:
            q = q.reshape(shape)
        base = key.replace("/", ".")
        const(base + ".q", np.ascontiguousarray(q))
        const(base + ".scale", np.array(w.scale, dtype=np.float64))
        const(base + ".min", np.array(w.min, dtype=np.float64))
        nodes.append(helper.make_node("Cast", [base + ".q"], [base + ".f64"], to=TensorProto.DOUBLE))
        nodes.append(helper.make_node("Mul", [base + ".f64", base + ".scale"], [base + ".scaled"]))
        nodes.append(helper.make_node("Add", [base + ".scaled", base + ".min"], [base + ".deq64"]))
        nodes.append(helper.make_node("Cast", [base + ".deq64"], [base], to=TensorProto.FLOAT))
        return base

    layers = layers_of(model_json)
    consumers: dict[str, int] = {}
    for layer in layers:
        for src in inbound(layer):
            consumers[src] = consumers.get(src, 0) + 1
    out_layers = model_json["modelTopology"]["model_config"]["config"]["output_layers"]
    if len(out_layers) != 1:
        raise SystemExit("expected one output layer")
    final = out_layers[0][0]

    tensor: dict[str, str] = {}  # keras layer name -> ONNX tensor name
    shape: dict[str, tuple] = {}  # keras layer name -> (C, H, W) or (F,)
    pending_pad: dict[str, tuple[str, list[int]]] = {}  # ZeroPadding2D folded into its only consumer

    for layer in layers:
        kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
        srcs = inbound(layer)
        out = OUTPUT_NAME if name == final else name
        if cfg.get("data_format", "channels_last") != "channels_last":
            raise SystemExit(f"{name}: data_format {cfg['data_format']}")

        if kind == "InputLayer":
            _, h, w, c = cfg["batch_input_shape"]
            if (h, w, c) != (SIZE, SIZE, 3):
                raise SystemExit(f"unexpected input shape {cfg['batch_input_shape']}")
            nodes.append(helper.make_node("Transpose", [INPUT_NAME], [name], perm=[0, 3, 1, 2]))
            tensor[name], shape[name] = name, (c, h, w)
            continue

        x, xs = tensor[srcs[0]], shape[srcs[0]]

        if kind == "ZeroPadding2D":
            (top, bottom), (left, right) = cfg["padding"]
            c, h, w = xs
            pads = [top, left, bottom, right]
            if consumers.get(name) == 1:
                pending_pad[name] = (x, pads)  # folded into the Conv that reads it
            else:
                p = const(name + ".pads", np.array([0, 0, top, left, 0, 0, bottom, right], dtype=np.int64))
                nodes.append(helper.make_node("Pad", [x, p], [out], mode="constant"))
            tensor[name], shape[name] = out, (c, h + top + bottom, w + left + right)

        elif kind in ("Conv2D", "DepthwiseConv2D"):
            extra = [0, 0, 0, 0]
            if srcs[0] in pending_pad:
                x, extra = pending_pad.pop(srcs[0])
            c, h, w = xs
            kh, kw = cfg["kernel_size"]
            sh, sw = cfg["strides"]
            dh, dw = cfg["dilation_rate"]
            if cfg["padding"] == "same":
                (pt, pb), (pl, pr) = _same_pads(h, kh, sh, dh), _same_pads(w, kw, sw, dw)
            elif cfg["padding"] == "valid":
                pt = pb = pl = pr = 0
            else:
                raise SystemExit(f"{name}: padding {cfg['padding']}")
            # Padding is computed on the padded size ``h``; the folded zero padding adds on top.
            pads = [pt + extra[0], pl + extra[1], pb + extra[2], pr + extra[3]]
            if kind == "Conv2D":
                cout, group = cfg["filters"], 1
                wname = weight(f"{name}/kernel", perm=(3, 2, 0, 1))  # HWIO -> OIHW
            else:
                mult = cfg["depth_multiplier"]
                cout, group = c * mult, c
                # [kh,kw,C,mult] -> [C*mult,1,kh,kw] (output channel c*mult + m, as TF orders them)
                wname = weight(f"{name}/depthwise_kernel", perm=(2, 3, 0, 1), shape=(c * mult, 1, kh, kw))
            ins = [x, wname]
            if cfg["use_bias"]:
                ins.append(weight(f"{name}/bias"))
            act = cfg.get("activation", "linear")
            conv_out = out if act == "linear" else name + ".pre"
            nodes.append(helper.make_node("Conv", ins, [conv_out], kernel_shape=[kh, kw], strides=[sh, sw],
                                          dilations=[dh, dw], pads=pads, group=group))
            _activation(nodes, helper, act, conv_out, out, name)
            ho = (h - ((kh - 1) * dh + 1) + pads[0] + pads[2]) // sh + 1
            wo = (w - ((kw - 1) * dw + 1) + pads[1] + pads[3]) // sw + 1
            tensor[name], shape[name] = out, (cout, ho, wo)

        elif kind == "BatchNormalization":
            if cfg["axis"] not in (-1, 3) or not cfg["center"] or not cfg["scale"]:
                raise SystemExit(f"{name}: unsupported BatchNormalization config")
            ins = [x] + [weight(f"{name}/{p}") for p in ("gamma", "beta", "moving_mean", "moving_variance")]
            nodes.append(helper.make_node("BatchNormalization", ins, [out], epsilon=float(cfg["epsilon"])))
            tensor[name], shape[name] = out, xs

        elif kind == "ReLU":
            if cfg.get("negative_slope", 0) or cfg.get("threshold", 0):
                raise SystemExit(f"{name}: leaky/thresholded ReLU not supported")
            _activation(nodes, helper, "relu6" if cfg.get("max_value") == 6 else "relu", x, out, name,
                        max_value=cfg.get("max_value"), const=const)
            tensor[name], shape[name] = out, xs

        elif kind == "Add":
            nodes.append(helper.make_node("Add", [tensor[s] for s in srcs], [out]))
            tensor[name], shape[name] = out, xs

        elif kind in ("AveragePooling2D", "MaxPooling2D"):
            if cfg["padding"] != "valid":
                raise SystemExit(f"{name}: pooling padding {cfg['padding']}")
            (kh, kw), (sh, sw) = cfg["pool_size"], cfg["strides"]
            op = "AveragePool" if kind == "AveragePooling2D" else "MaxPool"
            nodes.append(helper.make_node(op, [x], [out], kernel_shape=[kh, kw], strides=[sh, sw]))
            c, h, w = xs
            tensor[name], shape[name] = out, (c, (h - kh) // sh + 1, (w - kw) // sw + 1)

        elif kind == "Flatten":
            c, h, w = xs
            if h * w != 1:  # Keras flattens NHWC: go back to channels-last first
                nodes.append(helper.make_node("Transpose", [x], [name + ".nhwc"], perm=[0, 2, 3, 1]))
                x = name + ".nhwc"
            nodes.append(helper.make_node("Flatten", [x], [out], axis=1))
            tensor[name], shape[name] = out, (c * h * w,)

        elif kind == "Dropout":  # identity at inference
            tensor[name], shape[name] = x, xs

        elif kind == "Dense":
            act = cfg.get("activation", "linear")
            ins = [x, weight(f"{name}/kernel")]
            if cfg["use_bias"]:
                ins.append(weight(f"{name}/bias"))
            gemm_out = out if act == "linear" else name + ".pre"
            nodes.append(helper.make_node("Gemm", ins, [gemm_out]))
            _activation(nodes, helper, act, gemm_out, out, name)
            tensor[name], shape[name] = out, (cfg["units"],)

        else:
            raise SystemExit(f"layer type {kind} ({name}) not supported")

    if tensor[final] != OUTPUT_NAME:  # e.g. a trailing Dropout
        nodes.append(helper.make_node("Identity", [tensor[final]], [OUTPUT_NAME]))
    if pending_pad:
        raise SystemExit(f"unconsumed padding {list(pending_pad)}")
    unused = set(weights) - used
    if unused:
        raise SystemExit(f"weights not used: {sorted(unused)}")

    n_out = shape[final][0]
    graph = helper.make_graph(
        nodes,
        "nsfwjs_mobilenet_v2",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", n_out])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="argus convert_nsfwjs.py")
    model.ir_version = 7  # opset 13 era; readable by any onnxruntime >= 1.6
    model.doc_string = (f"nsfwjs {version} MobileNetV2 (MIT), uint8 weights dequantised in-graph. "
                        "Input NHWC RGB/255 224x224; output softmax " + ",".join(LABELS))
    onnx.helper.set_model_props(model, {"labels": json.dumps(LABELS), "source": f"npm:nsfwjs@{version}",
                                        "licence": "MIT"})
    onnx.checker.check_model(model, full_check=True)
    return model


def _activation(nodes, helper, act, src, dst, name, max_value=None, const=None):
    if act == "linear":
        return
    if act == "relu" and max_value is None:
        nodes.append(helper.make_node("Relu", [src], [dst]))
    elif act in ("relu", "relu6"):
        hi = 6.0 if act == "relu6" else float(max_value)
        lo_name = const(f"{name}.clip_min", np.array(0.0, dtype=np.float32))
        hi_name = const(f"{name}.clip_max", np.array(hi, dtype=np.float32))
        nodes.append(helper.make_node("Clip", [src, lo_name, hi_name], [dst]))
    elif act == "softmax":
        nodes.append(helper.make_node("Softmax", [src], [dst], axis=-1))
    else:
        raise SystemExit(f"{name}: activation {act} not supported")


# --------------------------------------------------------------------------------------------- Keras reference
def build_keras(model_json: dict, weights: dict[str, QWeight]):
    """The same network in Keras 3 (reference for verification only), with the dequantised weights."""
    import keras
    from keras import layers as L

    made: dict[str, object] = {}
    inp = None
    for layer in layers_of(model_json):
        kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
        srcs = [made[s] for s in inbound(layer)]
        if kind == "InputLayer":
            inp = keras.Input(shape=tuple(cfg["batch_input_shape"][1:]), name=name)
            made[name] = inp
            continue
        if kind == "ZeroPadding2D":
            lyr = L.ZeroPadding2D(padding=tuple(tuple(p) for p in cfg["padding"]), name=name)
        elif kind == "Conv2D":
            lyr = L.Conv2D(cfg["filters"], tuple(cfg["kernel_size"]), strides=tuple(cfg["strides"]),
                           padding=cfg["padding"], dilation_rate=tuple(cfg["dilation_rate"]),
                           use_bias=cfg["use_bias"], activation=cfg["activation"], name=name)
        elif kind == "DepthwiseConv2D":
            lyr = L.DepthwiseConv2D(tuple(cfg["kernel_size"]), strides=tuple(cfg["strides"]),
                                    padding=cfg["padding"], depth_multiplier=cfg["depth_multiplier"],
                                    dilation_rate=tuple(cfg["dilation_rate"]), use_bias=cfg["use_bias"],
                                    activation=cfg["activation"], name=name)
        elif kind == "BatchNormalization":
            lyr = L.BatchNormalization(axis=cfg["axis"], epsilon=cfg["epsilon"], center=cfg["center"],
                                       scale=cfg["scale"], name=name)
        elif kind == "ReLU":
            lyr = L.ReLU(max_value=cfg.get("max_value"), negative_slope=cfg.get("negative_slope", 0.0),
                         threshold=cfg.get("threshold", 0.0), name=name)
        elif kind == "Add":
            lyr = L.Add(name=name)
        elif kind == "AveragePooling2D":
            lyr = L.AveragePooling2D(tuple(cfg["pool_size"]), strides=tuple(cfg["strides"]),
                                     padding=cfg["padding"], name=name)
        elif kind == "Flatten":
            lyr = L.Flatten(name=name)
        elif kind == "Dropout":
            lyr = L.Dropout(cfg["rate"], name=name)
        elif kind == "Dense":
            lyr = L.Dense(cfg["units"], activation=cfg["activation"], use_bias=cfg["use_bias"], name=name)
        else:
            raise SystemExit(f"layer type {kind} not supported")
        made[name] = lyr(srcs if kind == "Add" else srcs[0])
    out_name = model_json["modelTopology"]["model_config"]["config"]["output_layers"][0][0]
    model = keras.Model(inp, made[out_name])
    attr = {"depthwise_kernel": "kernel"}  # Keras 3 calls the depthwise weight "kernel"
    for key, w in weights.items():
        lname, wname = key.split("/")
        var = getattr(model.get_layer(lname), attr.get(wname, wname))
        var.assign(w.dequantize())
    return model


# --------------------------------------------------------------------------------------------- verification
def sample_photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos, stretched to 224x224 RGB uint8."""
    from skimage import data, transform

    out = {}
    for name in ("astronaut", "chelsea", "coffee", "camera", "rocket"):
        img = getattr(data, name)()
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        img = img[..., :3]
        r = transform.resize(img, (SIZE, SIZE), order=1, anti_aliasing=True, preserve_range=True)
        out[name] = np.clip(np.rint(r), 0, 255).astype(np.uint8)
    return out


def ort_session(path: Path, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])


def verify(onnx_path: Path, model_json: dict, weights: dict[str, QWeight], use_tf2onnx: bool,
           tfjs_dir: Path | None) -> None:
    photos = sample_photos()
    names = list(photos)
    batch = np.stack([photos[n] for n in names]).astype(np.float32) / 255.0

    sess = ort_session(onnx_path)
    onnx_single = np.concatenate([sess.run(None, {INPUT_NAME: batch[i:i + 1]})[0] for i in range(len(names))])
    onnx_batch = sess.run(None, {INPUT_NAME: batch})[0]

    keras_model = build_keras(model_json, weights)
    keras_out = np.asarray(keras_model(batch, training=False))
    print(f"ONNX vs Keras (per image, batch 1): max abs diff {np.abs(onnx_single - keras_out).max():.3g}")
    print(f"ONNX batch {len(names)} vs batch 1: max abs diff {np.abs(onnx_batch - onnx_single).max():.3g}")

    rand = np.random.default_rng(0).random((3, SIZE, SIZE, 3), dtype=np.float32)
    print(f"ONNX vs Keras (3 random-noise inputs): max abs diff "
          f"{np.abs(sess.run(None, {INPUT_NAME: rand})[0] - np.asarray(keras_model(rand))).max():.3g}")

    print("photo        top class  score   " + " ".join(f"{label:>8}" for label in LABELS))
    for i, n in enumerate(names):
        p = onnx_single[i]
        print(f"{n:12s} {LABELS[int(p.argmax())]:9s}  {p.max():.4f}  " + " ".join(f"{v:8.4f}" for v in p))

    if use_tf2onnx:
        np.product = np.prod  # tf2onnx 1.17 still calls np.product (removed in numpy 2)
        import tensorflow as tf
        import tf2onnx

        spec = (tf.TensorSpec([None, SIZE, SIZE, 3], tf.float32, name=INPUT_NAME),)
        fn = tf.function(lambda x: keras_model(x, training=False))
        ref_model, _ = tf2onnx.convert.from_function(fn, input_signature=spec, opset=OPSET)
        with tempfile.TemporaryDirectory() as tmp:
            ref_path = Path(tmp) / "tf2onnx_fp32.onnx"
            ref_path.write_bytes(ref_model.SerializeToString())
            ref = ort_session(ref_path)
            ref_in = ref.get_inputs()[0].name
            ref_out = ref.run(None, {ref_in: batch})[0]
            print(f"tf2onnx fp32 export: {ref_path.stat().st_size / 1e6:.2f} MB; "
                  f"ours vs it: max abs diff {np.abs(onnx_batch - ref_out).max():.3g}; "
                  f"its CPU 1 thread batch 1: {_median_ms(ref, batch[:1], ref_in):.1f} ms")

    if tfjs_dir is not None:
        tfjs_check(tfjs_dir, onnx_path, batch[:1], names[0])

    # CPU timing: onnxruntime, 1 thread, median of 20 runs after warm-up.
    t0 = time.perf_counter()
    ort_session(onnx_path)
    print(f"onnxruntime session load (folds the dequantisation): {(time.perf_counter() - t0) * 1000:.0f} ms")
    for n in (1, 8):
        med = _median_ms(sess, np.concatenate([batch] * 2)[:n], INPUT_NAME)
        print(f"onnxruntime CPU 1 thread, batch {n}: {med:.1f} ms per batch ({med / n:.1f} ms per frame)")


def _median_ms(sess, x: np.ndarray, name: str, runs: int = 20) -> float:
    for _ in range(3):
        sess.run(None, {name: x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1000


_TFJS_JS = r"""
const path = require("path"), fs = require("fs");
const tf = require(path.join(process.argv[1], "node_modules", "@tensorflow", "tfjs"));
const [pkgDir, inPath, outPath] = process.argv.slice(2);
(async () => {
  await tf.setBackend("cpu");
  const dir = path.join(pkgDir, "dist", "models", "mobilenet_v2");
  const mj = require(path.join(dir, "model.min.js"));
  const bufs = [];
  for (const g of mj.weightsManifest) for (const p of g.paths)
    bufs.push(Buffer.from(require(path.join(dir, p + ".min.js")), "base64"));
  const all = Buffer.concat(bufs);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.length);
  const specs = [].concat(...mj.weightsManifest.map(g => g.weights));
  const artifacts = { modelTopology: mj.modelTopology, weightSpecs: specs, weightData: weightData };
  const model = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
  const raw = fs.readFileSync(inPath);
  const x = tf.tensor(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4), [1, 224, 224, 3]);
  const y = await model.predict(x).data();
  fs.writeFileSync(outPath, JSON.stringify({ backend: tf.getBackend(), version: tf.version.tfjs, y: Array.from(y) }));
})().catch(e => { console.error(e); process.exit(1); });
"""


def tfjs_check(tfjs_dir: Path, onnx_path: Path, x: np.ndarray, label: str) -> None:
    """Run the original TF.js runtime (CPU backend) on one input and compare with ONNX."""
    package = Path(ARGS.package).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        inp, out = Path(tmp) / "x.f32", Path(tmp) / "y.json"
        inp.write_bytes(np.ascontiguousarray(x, dtype=np.float32).tobytes())
        subprocess.run(["node", "-e", _TFJS_JS, str(tfjs_dir.resolve()), str(package), str(inp), str(out)],
                       check=True)
        res = json.loads(out.read_text())
    y = np.asarray(res["y"], dtype=np.float32)
    got = ort_session(onnx_path).run(None, {INPUT_NAME: x})[0][0]
    print(f"TF.js {res['version']} ({res['backend']} backend) on {label}: {[round(float(v), 5) for v in y]}; "
          f"ONNX vs TF.js max abs diff {np.abs(got - y).max():.3g}")


# --------------------------------------------------------------------------------------------- main
ARGS: argparse.Namespace


def main(argv: list[str] | None = None) -> int:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("package", help="unpacked npm nsfwjs package folder (the one holding package.json)")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "nsfwjs" / "model.onnx"))
    ap.add_argument("--verify", action="store_true", help="compare with Keras on sample photos, time it")
    ap.add_argument("--tf2onnx", action="store_true", help="with --verify: also compare a tf2onnx fp32 export")
    ap.add_argument("--tfjs", metavar="DIR", help="with --verify: folder with node_modules/@tensorflow/tfjs")
    ARGS = ap.parse_args(argv)

    package = Path(ARGS.package)
    version = json.loads((package / "package.json").read_text())["version"]
    model_json, blob = extract(package)
    weights = decode_weights(model_json, blob)
    print(f"nsfwjs {version}: {len(layers_of(model_json))} layers, {len(weights)} weights, {len(blob)} bytes")
    model = build_onnx(model_json, weights, version)
    out = Path(ARGS.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(model.SerializeToString())
    print(f"wrote {out} ({out.stat().st_size} bytes)")
    if ARGS.verify:
        verify(out, model_json, weights, ARGS.tf2onnx, Path(ARGS.tfjs) if ARGS.tfjs else None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
