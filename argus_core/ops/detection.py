"""``detection``: COCO-80 objects with NanoDet, or CenterNet on request (CONTRACT §3).

Result per cut: ``{"detections": [{"index", "class", "score", "pts"}]}`` with ``index`` the COCO-80 class
index (0 = person), ``pts`` the box's four corners ``[[x1,y1],[x2,y1],[x2,y2],[x1,y2]]`` in source-frame
pixels, best score first; labels = every detected class with its best score. ``params.other.threshold``
sets one minimum score for every class (default: the per-class thresholds of the chosen model).

``params.other.model`` (or the operator option ``detection_model``) picks the model: ``"nanodet"`` (NanoDet-m
416, the default) or ``"centernet"`` (CenterNet MobileNetV3 512, ``models/centernet``, optional). Measured on
real footage and stock photos in models/EVAL.md, "CenterNet or NanoDet": NanoDet is at least as good on the
footage and cheaper; CenterNet finds the close-up cup NanoDet misses.

Both read the frame letterboxed (aspect kept, top-left, padded) at their input size, so boxes map back by
``x·W/w``, ``y·H/h`` with ``w×h`` the picture inside the input; the decoding (GFL distributions or CenterNet
peaks, class-aware NMS) is :mod:`argus_core.post`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..aggregate import LABEL_FLOOR, floor_labels
from ..post.boxes import Candidates, class_aware_nms, corner_points, to_frame
from ..post.heads import GFLHead, decode_centernet, decode_gfl
from ..media.renditions import Frame, FrameSpec, letterbox
from ..runtime.manifest import ModelError, load_manifest, model_path, to_tensor
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Model, load_model
from .image_label import VisionOp, memo_for, round6, shared_model, spec_of
from .params import SCORE, Choice, other_float, truthy

log = logging.getLogger("argus.ops")

DEFAULT_THRESHOLD = 0.35
#: per-class minimum scores when the request sets no ``params.other.threshold`` (issue 9, tuned on the real
#: footage of models/EVAL.md with the letterboxed input): persons at 0.45 drop the cones/tripod boxes of the
#: static vtest camera (0.69 → 0 per frame) and keep 80/80 vtest cuts; cars at 0.25 find 5 of 6 bikes traffic
#: shots (0.35: 3). Other classes: the manifest's ``min_score`` (0.3 after letterboxing).
CLASS_THRESHOLDS = {"person": 0.45, "car": 0.25, "truck": 0.3, "bus": 0.3}
#: candidates are decoded (and memoised) down to this score; lower thresholds are raised to it
SCORE_FLOOR = 0.05


@dataclass(frozen=True)
class Detection:
    index: int
    cls: str
    score: float
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in source-frame pixels

    def to_result(self) -> dict:
        return {"index": self.index, "class": self.cls, "score": round6(self.score),
                "pts": corner_points(self.box)}


class Detector:
    """A loaded COCO detector with its input geometry and NMS settings (from the manifest's params); the
    subclasses turn one batch of model outputs into per-image :class:`Candidates` in input pixels.

    A cheap wrapper (a few manifest reads): ops make one per batch rather than keeping it, so a model
    dropped by ``check_ready`` is really freed."""

    head = ""

    def __init__(self, model: Model) -> None:
        man = model.manifest
        if man.head != self.head:
            raise ModelError(f"{man.name}: head {man.head!r} is not {self.head}")
        p = man.params
        self.model = model
        self.labels = list(man.labels)
        self.spec = spec_of(man)
        self.input_w, self.input_h = man.input.width, man.input.height
        self.nms_iou = float(p.get("nms_iou", 0.6))
        self.max_detections = int(p.get("max_detections", 100))
        self.pad_value = int(p.get("pad_value", 114))

    def candidates(self, frames: Sequence[Frame]) -> list[tuple[Candidates, float, float]]:
        """Per frame: candidates above :data:`SCORE_FLOOR` (memoised) and the input→frame scale (sx, sy)."""
        views = [f.views[self.spec] for f in frames]
        images = []
        for v in views:
            if v.shape[:2] != (self.input_h, self.input_w):
                # a 'contain'/'letterbox' rendition: the model sees it top-left on a padded canvas
                v = letterbox(v, self.input_w, self.input_h, self.pad_value)[0]
            images.append(v)
        rows = memo_for(self.model, f"{self.head}-candidates").rows(np.stack(images), self._decode_batch)
        return [(c, f.src_w / v.shape[1], f.src_h / v.shape[0]) for c, f, v in zip(rows, frames, views)]

    def _decode_batch(self, images: np.ndarray) -> list[Candidates]:
        raise NotImplementedError

    def detect(self, frames: Sequence[Frame], thresholds: Sequence[float],
               classes: set[int] | None = None) -> list[list[Detection]]:
        """Per frame: detections with ``score >= threshold`` after class-aware NMS, in frame pixels;
        ``classes`` restricts them to some class indices (before NMS)."""
        out = []
        for (cands, sx, sy), frame, thr in zip(self.candidates(frames), frames, thresholds):
            mask = cands.scores >= max(thr, SCORE_FLOOR)
            if classes is not None:
                mask &= np.isin(cands.classes, list(classes))
            kept = class_aware_nms(cands.select(mask), self.nms_iou, self.max_detections)
            boxes = to_frame(kept.boxes, sx, sy, frame.src_w, frame.src_h)
            out.append([Detection(int(c), self.labels[int(c)], float(s), tuple(map(float, b)))
                        for c, s, b in zip(kept.classes, kept.scores, boxes)])
        return out


class NanoDet(Detector):
    """NanoDet-m: per-stride class scores + GFL box distributions (:func:`decode_gfl`)."""

    head = "nanodet-gfl"

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        p = model.manifest.params
        if not p.get("sigmoid_applied", True):
            raise ModelError(f"{model.manifest.name}: raw logits are not supported (sigmoid_applied=false)")
        self.head_geometry = GFLHead(self.input_w, self.input_h, tuple(p.get("strides", (8, 16, 32))),
                                     int(p.get("reg_max", 10)), float(p.get("center_offset", 0.5)))
        self.score_outputs = list(p["score_outputs"])
        self.box_outputs = list(p["box_outputs"])

    def _decode_batch(self, images: np.ndarray) -> list[Candidates]:
        names = self.model.output_names
        outs = dict(zip(names, self.model.run_images(images)))
        return [
            decode_gfl([outs[n][i] for n in self.score_outputs], [outs[n][i] for n in self.box_outputs],
                       self.head_geometry, SCORE_FLOOR)
            for i in range(len(images))
        ]


class CenterNet(Detector):
    """CenterNet MobileNetV3 512: class heatmaps at stride 4 + per-cell box sides (:func:`decode_centernet`)."""

    head = "centernet"

    def __init__(self, model: Model) -> None:
        super().__init__(model)
        p = model.manifest.params
        self.heat_output = str(p["heatmap_output"])
        self.box_output = str(p["box_output"])
        self.stride = int(p.get("stride", 4))
        self.top_k = int(p.get("top_k", 100))
        self.kernel = int(p.get("peak_kernel", 3))

    def _decode_batch(self, images: np.ndarray) -> list[Candidates]:
        heat, sides = self.model.run(to_tensor(images, self.model.manifest.input), [self.heat_output, self.box_output])
        return [decode_centernet(heat[i], sides[i], self.stride, SCORE_FLOOR, self.top_k, self.kernel)
                for i in range(len(images))]


#: the detector class of each model the op can run
DETECTORS: dict[str, type[Detector]] = {"nanodet": NanoDet, "centernet": CenterNet}
CENTERNET = "centernet"


def labels_of(dets: Sequence[Detection]) -> list[Label]:
    """One label per class with its best score, in order of first (= best) appearance."""
    best: dict[str, float] = {}
    for d in dets:
        best[d.cls] = max(best.get(d.cls, 0.0), d.score)
    return [Label(name, round6(s)) for name, s in best.items()]


class DetectionOp(VisionOp):
    """Operator options: ``detection_centernet=true`` loads CenterNet (``models/centernet``) beside NanoDet, so
    requests may ask for it with ``params.other.model: "centernet"``; ``detection_model`` (``"nanodet"``, the
    default, or ``"centernet"``, which implies the former) picks the model of requests that name none.
    CenterNet stays unloaded otherwise (it adds ~300 MB per worker at batch 4, measured in models/EVAL.md) and
    a request asking for it is refused at submit (400 invalid parameters), as it is when the folder is
    missing."""

    name = "detection"
    other_params = {"threshold": SCORE, "model": Choice(tuple(DETECTORS))}
    models = ("nanodet",)
    description = ("COCO-80 objects (NanoDet-m 416, GFL decoding, class-aware NMS 0.6; or CenterNet MobileNetV3 "
                   "512 with params.other.model \"centernet\"); pts in source-frame pixels; "
                   "params.other.threshold (default per class)")

    def __init__(self, models_dir=None, options=None) -> None:
        super().__init__(models_dir, options)
        self.default_model = str(self.options.get("detection_model") or "nanodet")
        if self.default_model not in DETECTORS:
            raise ModelError(f"detection_model {self.default_model!r} is not one of {', '.join(DETECTORS)}")
        self._centernet_error = ""
        try:
            if self.default_model != CENTERNET and not truthy(self.options.get("detection_centernet", False)):
                raise ModelError("not turned on by the operator (option detection_centernet=true)")
            man = load_manifest(self.models_dir / CENTERNET)
            model_path(self.models_dir / CENTERNET, man)
            self.manifests[CENTERNET] = man  # listed by `argus models`
        except ModelError as exc:
            self._centernet_error = str(exc)
        self.default_threshold: dict[str, float] = {}
        self.class_thresholds: dict[str, dict[str, float]] = {}
        for m, man in self.manifests.items():
            p = man.params
            self.default_threshold[m] = float(p.get("min_score", DEFAULT_THRESHOLD))
            self.class_thresholds[m] = {**CLASS_THRESHOLDS, **dict(p.get("class_thresholds", {}))}

    def available(self) -> tuple[str, ...]:
        return tuple(m for m in DETECTORS if m in self.manifests and not (m == CENTERNET and self._centernet_error))

    def model_of(self, params: OpParams) -> str:
        return str((params.other or {}).get("model") or self.default_model)

    def check_params(self, params: OpParams) -> None:
        super().check_params(params)
        chosen = self.model_of(params)
        if chosen not in self.available():
            from ..errors import InvalidRequest

            raise InvalidRequest(detail=f"ops[detection].params.other.model {chosen!r} is not installed here "
                                        f"({self._centernet_error or 'no model'})", public=True)

    def specs(self) -> tuple[FrameSpec, ...]:
        return tuple(dict.fromkeys(spec_of(self.manifests[m]) for m in self.available()))

    def specs_for(self, params: OpParams) -> tuple[FrameSpec, ...]:
        # the decoder renders only what the chosen model reads
        chosen = self.model_of(params)
        return (spec_of(self.manifests[chosen]),) if chosen in self.manifests else self.specs()

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        super().load(providers, threads)
        if CENTERNET in self.manifests and CENTERNET not in self.loaded:
            try:
                self.loaded[CENTERNET] = load_model(self.models_dir, CENTERNET, self.options, providers, threads,
                                                    shared_model)
            except Exception as exc:  # NanoDet works without it, unless the operator made it the default
                self._centernet_error = f"{type(exc).__name__}: {exc}"
                if self.default_model == CENTERNET:
                    raise
                log.warning("detection: centernet unavailable: %s", self._centernet_error)

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        out: list[CutOutput | None] = [None] * len(frames)
        chosen = [self.model_of(p) for p in params]
        for m in dict.fromkeys(chosen):
            idx = [i for i, c in enumerate(chosen) if c == m]
            for i, o in zip(idx, self._infer_with(m, [frames[i] for i in idx], [params[i] for i in idx])):
                out[i] = o
        return out  # type: ignore[return-value]

    def _infer_with(self, m: str, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        default, per_class = self.default_threshold[m], self.class_thresholds[m]
        # an explicit params.other.threshold applies to every class; else the per-class defaults
        explicit = [(p.other or {}).get("threshold") is not None for p in params]
        thresholds = [other_float(p, "threshold", default) for p in params]
        floor = min([default, *per_class.values()])
        asked = [t if e else min(t, floor) for t, e in zip(thresholds, explicit)]
        out = []
        for dets, e in zip(DETECTORS[m](self.model(m)).detect(frames, asked), explicit):
            labels = labels_of(dets)
            if not e:
                dets = [d for d in dets if d.score >= per_class.get(d.cls, default)]
                labels = floor_labels(labels_of(dets), LABEL_FLOOR["detection"])
            out.append(CutOutput(labels=labels, result={"detections": [d.to_result() for d in dets]}))
        return out
