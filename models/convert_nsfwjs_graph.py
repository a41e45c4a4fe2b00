#!/usr/bin/env python3
"""Convert nsfwjs' *graph* model ``mobilenet_v2_mid`` (npm ``nsfwjs@4.4.0``, MIT) to ONNX, uint8 weights kept.

nsfwjs ships three classifiers over the same five classes (Drawing, Hentai, Neutral, Porn, Sexy):
``mobilenet_v2`` (a TF.js layers model: :mod:`convert_nsfwjs`), ``mobilenet_v2_mid`` (a TF.js *graph* model
exported from a TF-Hub MobileNetV2 1.4 feature vector + a dense softmax head; this script) and
``inception_v3`` (a 299² layers model, 22 MB of weights; not converted, see ``models/nsfwjs_mid/README.md``).

The graph uses only ``_FusedConv2D`` (BiasAdd [+ Relu6]), ``FusedDepthwiseConv2dNative``, ``AddV2``,
``AvgPool``, ``Squeeze``, ``_FusedMatMul`` (BiasAdd), ``Softmax``, and a ``Mul``/``Sub`` that maps the
0..1 input to −1..1 (TF-Hub's convention; nsfwjs divides pixels by 255 before, as for its other models).
Each op becomes its ONNX twin (``SAME`` padding = ONNX ``SAME_UPPER``, TensorFlow's extra pixel at the end);
every weight stays a uint8 initializer dequantised in-graph with TF.js' float64 arithmetic
(``convert_nsfwjs.build_onnx`` does the same for the layers model), so weights are bit-identical to the
ones TF.js uses. The check against TF.js itself is ``--tfjs DIR`` (``@tensorflow/tfjs-node`` not needed: the
CPU backend of ``@tensorflow/tfjs`` under DIR, as in :mod:`convert_nsfwjs`).

Reproduce::

    (cd /tmp && npm pack nsfwjs@4.4.0 && tar xzf nsfwjs-4.4.0.tgz)
    python models/convert_nsfwjs_graph.py /tmp/package --out models/nsfwjs_mid/model.onnx [--tfjs /tmp/tfjs]
    python -m argus_core.runtime.manifest check --write models/nsfwjs_mid

Needs numpy + onnx (+ node on PATH to read the UMD wrappers).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from convert_nsfwjs import LABELS, decode_weights, extract  # noqa: E402

INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
OPSET = 13
SIZE = 224


def _s(attr: dict, key: str) -> str:
    return base64.b64decode(attr[key]["s"]).decode()


def _ints(attr: dict, key: str) -> list[int]:
    return [int(v) for v in attr[key]["list"].get("i", [])]


def _fused(attr: dict) -> list[str]:
    return [base64.b64decode(s).decode() for s in attr.get("fused_ops", {}).get("list", {}).get("s", [])]


def build_onnx(model_json: dict, blob: bytes, version: str):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = decode_weights(model_json, blob)
    nodes_out: list = []
    inits: list = []
    used: set[str] = set()
    names: dict[str, str] = {}

    def clean(n: str) -> str:
        return n.replace("StatefulPartitionedCall/", "").replace("sequential/keras_layer/", "").replace("/", ".")

    def weight(key: str, perm=None, shape=None) -> str:
        w = weights[key]
        used.add(key)
        q = w.q if perm is None else w.q.transpose(perm)
        if shape is not None:
            q = q.reshape(shape)
        base = clean(key)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(q), base + ".q"))
        inits.append(numpy_helper.from_array(np.array(w.scale, dtype=np.float64), base + ".scale"))
        inits.append(numpy_helper.from_array(np.array(w.min, dtype=np.float64), base + ".min"))
        nodes_out.append(helper.make_node("Cast", [base + ".q"], [base + ".f64"], to=TensorProto.DOUBLE))
        nodes_out.append(helper.make_node("Mul", [base + ".f64", base + ".scale"], [base + ".scaled"]))
        nodes_out.append(helper.make_node("Add", [base + ".scaled", base + ".min"], [base + ".deq64"]))
        nodes_out.append(helper.make_node("Cast", [base + ".deq64"], [base], to=TensorProto.FLOAT))
        return base

    def src(n: str) -> str:
        n = n.split(":")[0]
        if n in names:
            return names[n]
        if n in weights:
            names[n] = weight(n)
            return names[n]
        raise SystemExit(f"unknown input {n}")

    def activation(fused: list[str], pre: str, out: str) -> None:
        extra = [f for f in fused if f != "BiasAdd"]
        if not extra:
            nodes_out.append(helper.make_node("Identity", [pre], [out]))
        elif extra == ["Relu6"]:
            lo, hi = out + ".lo", out + ".hi"
            inits.append(numpy_helper.from_array(np.array(0.0, dtype=np.float32), lo))
            inits.append(numpy_helper.from_array(np.array(6.0, dtype=np.float32), hi))
            nodes_out.append(helper.make_node("Clip", [pre, lo, hi], [out]))
        elif extra == ["Relu"]:
            nodes_out.append(helper.make_node("Relu", [pre], [out]))
        else:
            raise SystemExit(f"fused ops {fused} not supported")

    final = None
    for node in model_json["modelTopology"]["node"]:
        op, name, attr, ins = node["op"], node["name"], node.get("attr", {}), node.get("input", [])
        out = clean(name)
        if op == "Const":
            continue
        if op == "Placeholder":
            out = out + ".nchw"
            nodes_out.append(helper.make_node("Transpose", [INPUT_NAME], [out], perm=[0, 3, 1, 2]))
        elif op in ("Mul", "Sub", "AddV2"):
            onnx_op = {"Mul": "Mul", "Sub": "Sub", "AddV2": "Add"}[op]
            nodes_out.append(helper.make_node(onnx_op, [src(i) for i in ins], [out]))
        elif op in ("_FusedConv2D", "FusedDepthwiseConv2dNative"):
            if _s(attr, "data_format") != "NHWC":
                raise SystemExit(f"{name}: data format")
            pad = _s(attr, "padding")
            auto_pad = {"SAME": "SAME_UPPER", "VALID": "VALID"}[pad]
            strides = _ints(attr, "strides")[1:3]
            dil = _ints(attr, "dilations")[1:3]
            fused = _fused(attr)
            if fused[:1] != ["BiasAdd"] or len(ins) != 3:
                raise SystemExit(f"{name}: fused ops {fused}")
            wkey = ins[1].split(":")[0]
            kh, kw, cin, cout = weights[wkey].shape
            if op == "_FusedConv2D":
                w = weight(wkey, perm=(3, 2, 0, 1))  # HWIO -> OIHW
                group = 1
            else:
                w = weight(wkey, perm=(2, 3, 0, 1), shape=(cin * cout, 1, kh, kw))  # [kh,kw,C,mult]
                group = cin
            used.add(wkey)
            names[wkey] = w
            pre = out + ".pre"
            nodes_out.append(helper.make_node("Conv", [src(ins[0]), w, src(ins[2])], [pre], kernel_shape=[kh, kw],
                                              strides=strides, dilations=dil, auto_pad=auto_pad, group=group))
            activation(fused, pre, out)
        elif op == "AvgPool":
            if _s(attr, "padding") != "VALID":
                raise SystemExit(f"{name}: pool padding")
            k = _ints(attr, "ksize")[1:3]
            s = _ints(attr, "strides")[1:3]
            nodes_out.append(helper.make_node("AveragePool", [src(ins[0])], [out], kernel_shape=k, strides=s))
        elif op == "Squeeze":
            if _ints(attr, "squeeze_dims") != [1, 2]:
                raise SystemExit(f"{name}: squeeze dims")
            nodes_out.append(helper.make_node("Flatten", [src(ins[0])], [out], axis=1))  # [N,C,1,1] -> [N,C]
        elif op == "_FusedMatMul":
            if attr.get("transpose_a", {}).get("b") or attr.get("transpose_b", {}).get("b"):
                raise SystemExit(f"{name}: transposed matmul")
            fused = _fused(attr)
            pre = out + ".pre"
            nodes_out.append(helper.make_node("Gemm", [src(ins[0]), src(ins[1]), src(ins[2])], [pre]))
            activation(fused, pre, out)
        elif op == "Softmax":
            nodes_out.append(helper.make_node("Softmax", [src(ins[0])], [out], axis=-1))
        elif op == "Identity":
            nodes_out.append(helper.make_node("Identity", [src(ins[0])], [OUTPUT_NAME]))
            final = OUTPUT_NAME
        else:
            raise SystemExit(f"op {op} ({name}) not supported")
        names[name] = out
    if final is None:
        raise SystemExit("no Identity output")
    unused = set(weights) - used
    if unused:
        raise SystemExit(f"weights not used: {sorted(unused)[:5]}")
    graph = helper.make_graph(
        nodes_out, "nsfwjs_mobilenet_v2_mid",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", SIZE, SIZE, 3])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", len(LABELS)])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="argus convert_nsfwjs_graph.py")
    model.ir_version = 7
    model.doc_string = (f"nsfwjs {version} mobilenet_v2_mid (MIT), uint8 weights dequantised in-graph. "
                        "Input NHWC RGB/255 224x224; output softmax " + ",".join(LABELS))
    onnx.helper.set_model_props(model, {"labels": json.dumps(LABELS), "source": f"npm:nsfwjs@{version}",
                                        "licence": "MIT"})
    onnx.checker.check_model(model, full_check=True)
    return model


# Node snippet for --tfjs: run the original graph model with TF.js' CPU backend on float32 NHWC images.
_TFJS_JS = r"""
const tf = require("@tensorflow/tfjs");
const fs = require("fs"), path = require("path");
const dir = process.argv[1];
const model = require(path.join(dir, "model.min.js"));
const shards = [];
for (const g of model.weightsManifest) for (const p of g.paths) shards.push(Buffer.from(require(path.join(dir, p + ".min.js")), "base64"));
const buf = Buffer.concat(shards);
const ab = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);
const specs = model.weightsManifest.flatMap(g => g.weights);
(async () => {
  await tf.setBackend("cpu");
  const m = await tf.loadGraphModel(tf.io.fromMemory({modelTopology: model.modelTopology, weightSpecs: specs, weightData: ab, format: model.format}));
  const x = new Float32Array(fs.readFileSync(process.argv[2]).buffer.slice(0));
  const t = tf.tensor(x, [x.length / (224*224*3), 224, 224, 3]);
  const y = await m.predict(t).array();
  process.stdout.write(JSON.stringify(y));
})();
"""


def tfjs_check(tfjs_dir: Path, package: Path, model: str, onnx_path: Path) -> float:
    """Max |ONNX − TF.js| on three real photos (face-api demo samples, fetched like the tests do)."""
    import subprocess
    import tempfile

    import onnxruntime as ort
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.data import face_api_sample

    x = np.concatenate([np.asarray(Image.open(face_api_sample(i)).convert("RGB").resize((SIZE, SIZE), Image.BILINEAR),
                                   dtype=np.float32)[None] / 255 for i in (1, 2, 3)])
    with tempfile.NamedTemporaryFile(suffix=".bin") as fh:
        x.tofile(fh.name)
        out = subprocess.run(["node", "-e", _TFJS_JS, str(package / "dist" / "models" / model), fh.name],
                             capture_output=True, text=True, cwd=tfjs_dir, check=True).stdout
    ref = np.array(json.loads(out), dtype=np.float32)
    got = ort.InferenceSession(str(onnx_path)).run(None, {INPUT_NAME: x})[0]
    return float(np.abs(ref - got).max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("package", type=Path, help="the unpacked npm package folder (package/)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--model", default="mobilenet_v2_mid")
    ap.add_argument("--tfjs", type=Path, help="a folder with @tensorflow/tfjs installed (npm install "
                    "@tensorflow/tfjs@4.22.0): compare against TF.js itself")
    args = ap.parse_args(argv)
    import onnx

    version = json.loads((args.package / "package.json").read_text())["version"]
    model_json, blob = extract(args.package, args.model)
    model = build_onnx(model_json, blob, version)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(args.out))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")
    if args.tfjs:
        print(f"max |ONNX - TF.js| on 3 photos: {tfjs_check(args.tfjs, args.package, args.model, args.out):.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
