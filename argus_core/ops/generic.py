"""Bring-your-own models: an ONNX file plus a manifest with ``params.op`` becomes an op.

A folder ``<models>/<folder>/`` holding ``manifest.json`` (see :class:`argus_core.runtime.manifest.Manifest`) and the
ONNX file turns into an op named ``params.op`` when its ``kind`` is one of:

``classifier``
    One output of class scores ``[N, C]`` (extra 1-sized axes are squeezed). ``params.activation`` is
    ``softmax`` (logits, one class), ``sigmoid`` (logits, multi-label) or ``none`` (the model already outputs
    probabilities); left out, it is ``none`` when the model's outputs on the fixed check image already form
    a probability distribution, else ``softmax`` (say it explicitly for sigmoid models). Result
    ``{"confidences": [{"index", "class", "score"}]}`` (the ``top_k`` best, default 5); labels: the classes
    whose score reaches ``params.threshold`` (default 0.5; a request may raise or lower it with
    ``params.other.threshold``).
``detector``
    Chosen by the manifest's ``head``: ``yolov5`` (output ``[N, boxes, 5 + C]``: cx, cy, w, h, objectness,
    class scores), ``yolov8`` (output ``[N, 4 + C, boxes]``: cx, cy, w, h, class scores) — boxes in input
    pixels (``params.normalised=true`` when they are 0..1), ``params.box`` ``cxcywh`` (default) or ``xyxy``
    — or ``nanodet-gfl``, the NanoDet head we ship (``params`` as in ``models/nanodet/manifest.json``:
    ``strides``, ``reg_max``, ``score_outputs``, ``box_outputs``; decoded by :mod:`argus_core.post.heads`).
    ``params.threshold`` (default 0.25; the request may set ``params.other.threshold``), class-aware NMS in
    numpy (``params.iou``, default 0.45; ``params.class_agnostic``; ``min_score``/``nms_iou`` also read).
    Result ``{"detections": [{"index", "class", "score", "pts"}]}`` with ``pts`` the four corners in
    source-frame pixels; labels: every detected class (best score).
``embedder``
    One output ``[N, D]``: the L2-normalised vector (``params.normalize``, default true) in the result
    ``{"vector": [...], "dim": D}``; no labels.

The input is described by ``input`` (size, ``resize`` rule, layout, colour order, mean/std), exactly as for
the models we ship. Bring-your-own models need a fixed input size. Like every model, a BYO model is
verified at load time by the checksum of its outputs on a fixed image (``python -m argus_core.runtime.manifest check
--write models/<folder>`` records it once): a missing file or a failed check makes the op refuse with
``bad op`` and the reason in the log.

Manifests may also point at a model file inside an installed Python package instead of a file in the
folder: ``"file": "package:<import name>/<path inside the package>"`` (used for models too large to commit,
e.g. ``open_nsfw``). The file's ``sha256`` is then checked too (such files are never re-converted, so the
hash is stable), and so is the package's version against ``source.version``.
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..media.renditions import Frame, FrameSpec, centre_crop
from ..runtime.manifest import (
    MODELS_DIR,
    InputSpec,
    Manifest,
    ModelError,
    fixed_image,
)
from ..post.boxes import nms
from ..post.heads import decode_yolo
from ..post.scores import sigmoid, softmax
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Model, Op, load_model
from .params import SCORE, other_float

log = logging.getLogger("argus.ops.generic")

#: op names a manifest may declare
OP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


# Model files may live inside an installed package ("package:" files); models.py resolves them for every
# model, so the plain Model class serves manifest ops too.
ManifestModel = Model


# -- fitting frame views to a fixed model input ------------------------------------------------------------
def spec_of(inp: InputSpec) -> FrameSpec:
    return FrameSpec(inp.width, inp.height, inp.resize, inp.max_side)


def fit_view(view: np.ndarray, inp: InputSpec, fill: int = 0) -> tuple[np.ndarray, float, float]:
    """The view at exactly the model size (``cover``: centre crop; ``contain``/``letterbox``: padded
    bottom/right) and the crop offset (x, y) in view pixels (0 unless cropped)."""
    w, h = inp.width, inp.height
    vh, vw = view.shape[:2]
    if (vw, vh) == (w, h):
        return view, 0.0, 0.0
    if inp.resize == "cover":
        return centre_crop(view, w, h), float(max(0, (vw - w) // 2)), float(max(0, (vh - h) // 2))
    out = np.full((h, w, view.shape[2]), fill, dtype=view.dtype)
    out[: min(h, vh), : min(w, vw)] = view[:h, :w]
    return out, 0.0, 0.0


# -- op kinds ------------------------------------------------------------------------------------------------
class ManifestOp(Op):
    other_params = {"threshold": SCORE}
    """Common part of the manifest-declared ops (subclassed per manifest by :func:`manifest_ops`)."""

    kind: str = ""

    def __init__(self, models_dir: Path | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(models_dir, options)
        self.folder_name = self.models[0]
        self.manifest: Manifest = self.manifests[self.folder_name]
        m = self.manifest
        if m.kind != self.kind:
            raise ModelError(f"{m.name}: manifest kind {m.kind!r} is not {self.kind!r}")
        if not (m.input.width > 0 and m.input.height > 0):
            raise ModelError(f"{m.name}: a bring-your-own model needs a fixed input width and height")
        self.p: dict[str, Any] = dict(m.params)
        self.fill = int(self.p.get("pad_value", 114 if m.kind == "detector" else 0))

    def specs(self) -> tuple[FrameSpec, ...]:
        return (spec_of(self.manifest.input),)

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        if self.folder_name not in self.loaded:
            self.loaded[self.folder_name] = load_model(self.models_dir, self.folder_name, self.options,
                                                       providers, threads)

    def _output(self, outputs: list[np.ndarray]) -> np.ndarray:
        want = self.p.get("output")
        if want:
            names = self.model().output_names
            if want not in names:
                raise ModelError(f"{self.manifest.name}: no output named {want!r}")
            return np.asarray(outputs[names.index(want)])
        return np.asarray(outputs[0])

    def _fit(self, frames: Sequence[Frame]) -> tuple[np.ndarray, list[tuple[float, float]]]:
        """The batch at the model's input size, and each frame's crop offset in view pixels."""
        spec = self.specs()[0]
        imgs, offsets = [], []
        for f in frames:
            img, ox, oy = fit_view(f.views[spec], self.manifest.input, self.fill)
            imgs.append(img)
            offsets.append((ox, oy))
        return np.stack(imgs), offsets

    def _run(self, frames: Sequence[Frame]) -> tuple[np.ndarray, list[tuple[float, float]]]:
        imgs, offsets = self._fit(frames)
        return self._output(self.model().run_images(imgs)), offsets

    def _label(self, index: int) -> str:
        labels = self.manifest.labels
        return labels[index] if 0 <= index < len(labels) else str(index)


class ClassifierOp(ManifestOp):
    kind = "classifier"
    ACTIVATIONS = ("softmax", "sigmoid", "none")

    def __init__(self, models_dir: Path | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(models_dir, options)
        self.activation = self.p.get("activation", "auto")
        if self.activation not in self.ACTIVATIONS + ("auto",):
            raise ModelError(f"{self.manifest.name}: activation {self.activation!r} is not one of "
                             f"{', '.join(self.ACTIVATIONS)}")

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        super().load(providers, threads)
        if self.activation == "auto":  # probabilities already? (decided once, on the fixed check image)
            m = self.model()
            size = (m.manifest.input.width, m.manifest.input.height)
            row = self._output(m.run_images(fixed_image(*size)[None])).reshape(-1).astype(np.float64)
            probs = bool(row.min() >= 0 and row.max() <= 1 and abs(row.sum() - 1) < 1e-3)
            self.activation = "none" if probs else "softmax"

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        out, _ = self._run(frames)
        out = out.reshape(out.shape[0], -1).astype(np.float64)
        act = self.activation
        probs = softmax(out) if act == "softmax" else sigmoid(out) if act == "sigmoid" else out
        top_k = int(self.p.get("top_k", 5))
        results = []
        for row, prm in zip(probs, params):
            threshold = other_float(prm, "threshold", float(self.p.get("threshold", 0.5)))
            order = np.argsort(-row, kind="stable")[:top_k]
            conf = [{"index": int(i), "class": self._label(int(i)), "score": round(float(row[i]), 6)}
                    for i in order]
            labels = [Label(c["class"], c["score"]) for c in conf if c["score"] >= threshold]
            results.append(CutOutput(labels=labels, result={"confidences": conf}))
        return results


class DetectorOp(ManifestOp):
    kind = "detector"
    HEADS = ("yolov5", "yolov8", "nanodet-gfl")

    def __init__(self, models_dir: Path | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(models_dir, options)
        self.head = (self.manifest.head or self.p.get("head", "")).lower()
        if self.head == "nanodet":
            self.head = "nanodet-gfl"
        if self.head not in self.HEADS:
            raise ModelError(f"{self.manifest.name}: detector head {self.head!r} is not supported for "
                             f"bring-your-own models ({', '.join(self.HEADS)})")
        p = self.p
        # the names our shipped manifests use (min_score, nms_iou) are accepted as well
        self.threshold = float(p.get("threshold", p.get("min_score", 0.25)))
        self.iou = float(p.get("iou", p.get("nms_iou", 0.45)))
        self.gfl: Any = None
        if self.head == "nanodet-gfl":
            try:
                from ..post.heads import GFLHead
            except ImportError as exc:
                raise ModelError(f"{self.manifest.name}: the NanoDet decoder is not available: {exc}") from exc
            inp = self.manifest.input
            if not (p.get("score_outputs") and p.get("box_outputs")):
                raise ModelError(f"{self.manifest.name}: a nanodet-gfl head needs params.score_outputs and "
                                 "params.box_outputs (one output name per stride)")
            self.gfl = GFLHead(inp.width, inp.height, tuple(p.get("strides", (8, 16, 32))),
                               int(p.get("reg_max", 10)), float(p.get("center_offset", 0.5)))

    def _candidates(self, outs: dict[str, np.ndarray], k: int, threshold: float):
        """One image's boxes (x1, y1, x2, y2 in model-input pixels), scores and classes above threshold."""
        inp = self.manifest.input
        if self.gfl is not None:
            from ..post.heads import decode_gfl

            scores = [np.asarray(outs[n][k], dtype=np.float64) for n in self.p["score_outputs"]]
            if not self.p.get("sigmoid_applied", True):
                scores = [sigmoid(s) for s in scores]
            c = decode_gfl(scores, [outs[n][k] for n in self.p["box_outputs"]], self.gfl, threshold)
            return c.boxes.astype(np.float64), c.scores.astype(np.float64), c.classes
        want = self.p.get("output") or self.model().output_names[0]
        boxes, scores, classes = decode_yolo(np.asarray(outs[want][k], dtype=np.float64), self.head, threshold)
        if self.p.get("normalised"):
            boxes = boxes * np.array([inp.width, inp.height, inp.width, inp.height], dtype=np.float64)
        if self.p.get("box", "cxcywh") == "cxcywh":
            cx, cy, w, h = boxes.T
            boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
        return boxes, scores, classes

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        spec = self.specs()[0]
        imgs, offsets = self._fit(frames)
        model = self.model()
        outs = dict(zip(model.output_names, model.run_images(imgs)))
        agnostic = bool(self.p.get("class_agnostic", False))
        limit = int(self.p.get("max_detections", 100))
        results = []
        for k, (f, prm) in enumerate(zip(frames, params)):
            threshold = other_float(prm, "threshold", float(self.threshold))
            boxes, scores, classes = self._candidates(outs, k, threshold)
            keep = nms(boxes, scores, self.iou, None if agnostic else classes, limit)
            vh, vw = f.views[spec].shape[:2]
            ox, oy = offsets[k]
            sx, sy = f.src_w / vw, f.src_h / vh
            dets, best = [], {}
            for i in keep:
                x1, y1, x2, y2 = boxes[i]
                x1, x2 = (np.clip([x1 + ox, x2 + ox], 0, vw) * sx).round().astype(int).tolist()
                y1, y2 = (np.clip([y1 + oy, y2 + oy], 0, vh) * sy).round().astype(int).tolist()
                name = self._label(int(classes[i]))
                score = round(float(scores[i]), 6)
                dets.append({"index": int(classes[i]), "class": name, "score": score,
                             "pts": [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]})
                best[name] = max(best.get(name, 0.0), score)
            results.append(CutOutput(labels=[Label(n, s) for n, s in best.items()],
                                     result={"detections": dets}))
        return results


class EmbedderOp(ManifestOp):
    kind = "embedder"

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        out, _ = self._run(frames)
        vecs = out.reshape(out.shape[0], -1).astype(np.float64)
        if self.p.get("normalize", True):
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        return [CutOutput(labels=[], result={"vector": [round(float(v), 6) for v in row],
                                             "dim": int(vecs.shape[1])})
                for row in vecs]


KINDS: dict[str, type[ManifestOp]] = {"classifier": ClassifierOp, "detector": DetectorOp,
                                      "embedder": EmbedderOp}


def manifest_ops(models_dir: Path | None = None) -> dict[str, type[ManifestOp]]:
    """``{op name: op class}`` for every manifest in the models folder that declares ``params.op``.

    Each value is an :class:`Op` subclass made for that manifest: calling it with ``(models_dir, options)``
    gives the op (manifest read; the model is loaded and verified by ``load``)."""
    root = Path(models_dir or os.environ.get("ARGUS_MODELS_DIR") or MODELS_DIR)
    out: dict[str, type[ManifestOp]] = {}
    if not root.is_dir():
        return out
    for path in sorted(root.glob("*/manifest.json")):
        try:
            raw = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            log.warning("unreadable manifest %s: %s", path, exc)
            continue
        params = raw.get("params") if isinstance(raw, dict) else None
        op = params.get("op") if isinstance(params, dict) else None
        if not op or raw.get("quantized"):  # an int8 version runs for its reference (runtime/precision.py)
            continue
        base = KINDS.get(raw.get("kind", ""))
        if not isinstance(op, str) or not OP_NAME.match(op) or base is None:
            log.warning("manifest %s: cannot make op %r of kind %r (kinds: %s)", path, op, raw.get("kind"),
                        ", ".join(KINDS))
            continue
        if op in out:
            log.warning("manifest %s: op %r already declared by %s; ignored", path, op, out[op].models[0])
            continue
        desc = str(raw.get("description") or "").strip()
        out[op] = type(f"{base.__name__}_{op}", (base,), {
            "name": op,
            "models": (path.parent.name,),
            "description": f"{raw.get('kind')} {raw.get('name', path.parent.name)} (bring-your-own model)"
                           + (f": {desc}" if desc else ""),
            "__module__": __name__,
        })
    return out
