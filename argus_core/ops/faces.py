"""``face_group_search`` and ``politician``: find enrolled people in frames (CONTRACT §3).

Pipeline (:mod:`argus_core.faces.pipeline`): FaceBoxes on the frame shrunk to ≤ 1024 px → BlazeFace keypoints →
alignment → FaceRes descriptor → exact cosine search of a gallery (:mod:`argus_core.faces.gallery`).

Per cut ``result``::

    {"detections": [{"boundingBox": {"pts": [[x, y] × 4], "score": s},
                     "value": {"name": str, "id": str, "score": cosine, "review": bool}}]}

``pts`` are the box corners (clockwise from top-left) in source-frame pixels. A face whose best cosine is
below the threshold is unknown: ``name`` and ``id`` are empty, ``score`` is its best cosine to any enrolled
face (0.0 when the gallery is empty), and it yields no label. Labels are the names of recognised faces,
one per name with its best score. ``face_group_search`` also sets a top-level ``review`` (any detection to
review); ``politician`` adds ``value.group``: the face's ``meta["group"]`` (a category such as
``domestic_statesman``), "" when not set.

Settings: ``params.other.group`` (face_group_search: the gallery), ``params.other.threshold`` (0..1,
default ``options["face_threshold"]`` or 0.6); operator options ``galleries_dir`` (see
:func:`argus_core.faces.gallery.default_galleries_dir`) and ``politician_gallery`` (the gallery ``politician``
searches; without it, or when that gallery does not exist when the worker starts, the op is not ready and
requests naming it get ``bad op``). A frame whose gallery is missing gets ``result: null`` and no labels
(as the original service did on an API error), and a warning in the log.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import OrderedDict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ArgusError, InvalidRequest, MissingGroup, UnknownGroup
from ..faces.pipeline import DETECT_SPEC, FacePipeline
from ..media.renditions import Frame, FrameSpec
from ..faces.gallery import DEFAULT_THRESHOLD, GalleryStore, Match, check_group_name, needs_review
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Op
from .params import SCORE, Text

log = logging.getLogger("argus.ops.faces")

FACE_MODELS = ("faceboxes", "blazeface", "faceres")


#: one pipeline per worker process for both face ops (same models, loaded once)
_PIPELINES: dict[tuple, FacePipeline] = {}
#: faces found per frame, shared by the face ops of a worker: a job running face_group_search and
#: politician analyses each frame once (keyed by the frame's slot address, offset, size and a pixel sample)
_FACES_CACHE: OrderedDict[tuple, list] = OrderedDict()
_FACES_CACHE_SIZE = 64


def shared_pipeline(models_dir: Path, providers: list | None, threads: int) -> FacePipeline:
    key = (str(models_dir), repr(providers), threads)
    if key not in _PIPELINES:
        _PIPELINES[key] = FacePipeline(models_dir, providers=providers, threads=threads)
    return _PIPELINES[key]


def _frame_key(frame: Frame, view: np.ndarray) -> tuple:
    sample = np.ascontiguousarray(view[::16, ::16])
    return (view.__array_interface__["data"][0], view.shape, frame.offset, frame.src_w, frame.src_h,
            zlib.crc32(sample.tobytes()))


def analyze_frames(pipeline: FacePipeline, frames: Sequence[Frame], views: Sequence[np.ndarray]) -> list[list]:
    """Faces of each frame (with descriptors), reusing what another face op found in the same frames."""
    keys = [_frame_key(f, v) for f, v in zip(frames, views)]
    todo = [i for i, k in enumerate(keys) if k not in _FACES_CACHE]
    if todo:
        found = pipeline.analyze_many([views[i] for i in todo])
        for i, faces in zip(todo, found):
            _FACES_CACHE[keys[i]] = faces
    out = []
    for k in keys:
        _FACES_CACHE.move_to_end(k)
        out.append(_FACES_CACHE[k])
    while len(_FACES_CACHE) > _FACES_CACHE_SIZE:
        _FACES_CACHE.popitem(last=False)
    return out


class NotConfigured(RuntimeError):
    """An op needs an operator setting that is missing (the op is then unavailable: ``bad op``)."""


class _FaceSearchOp(Op):
    other_params = {"threshold": SCORE}
    models = FACE_MODELS
    #: politician: ``value.group`` carries the face's category (``meta["group"]``), no top-level ``review``
    value_group = False

    def __init__(self, models_dir: Path | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(models_dir, options)
        self.pipeline: FacePipeline | None = None
        self.store: GalleryStore | None = None
        self._warned: set[str] = set()
        self.default_threshold = _threshold(self.options.get("face_threshold"), DEFAULT_THRESHOLD)

    def specs(self) -> tuple[FrameSpec, ...]:
        return (DETECT_SPEC,)

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        self.check_config()
        self.store = GalleryStore(options=self.options, models_dir=self.models_dir)
        self.check_galleries()
        if self.pipeline is None:
            self.pipeline = shared_pipeline(self.models_dir, providers, threads)

    def check_config(self) -> None:
        """Raise :class:`NotConfigured` when an operator setting the op needs is missing."""

    def check_galleries(self) -> None:
        """Raise :class:`NotConfigured` when a gallery the op needs does not exist."""

    def group_of(self, p: OpParams) -> str | None:
        raise NotImplementedError

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        assert self.pipeline is not None and self.store is not None, "op not loaded"
        views = [f.views[DETECT_SPEC] for f in frames]
        groups = [self.group_of(p) for p in params]
        thresholds = [_threshold((p.other or {}).get("threshold"), self.default_threshold) for p in params]
        galleries = {}
        for group in dict.fromkeys(g for g in groups if g):
            try:
                galleries[group] = self.store.gallery(group)
            except ArgusError as exc:
                self._warn(group, exc)
        # frames whose gallery is missing are not analysed at all
        todo = [i for i, g in enumerate(groups) if g in galleries]
        per_frame: list[list] = [[] for _ in frames]
        for i, faces in zip(todo, analyze_frames(self.pipeline, [frames[i] for i in todo], [views[i] for i in todo])):
            per_frame[i] = faces
        # one search per gallery over the faces of every frame that uses it (at threshold 0: each frame
        # applies its own threshold below)
        matches: list[list[Match | None] | None] = [None] * len(frames)
        for group, gallery in galleries.items():
            idx = [i for i in todo if groups[i] == group]
            embs = [f.embedding for i in idx for f in per_frame[i]]
            found = gallery.search(np.stack(embs), threshold=0.0) if embs else []
            k = 0
            for i in idx:
                n = len(per_frame[i])
                matches[i] = found[k : k + n]
                k += n
        out = []
        for frame, view, faces, ms, thr in zip(frames, views, per_frame, matches, thresholds):
            if ms is None:
                out.append(CutOutput(labels=[], result=None))
                continue
            sx = frame.src_w / view.shape[1]
            sy = frame.src_h / view.shape[0]
            dets = []
            best: dict[str, float] = {}
            for face, m in zip(faces, ms):
                value = self._value(m, thr)
                dets.append({"boundingBox": {"pts": face.pts(sx, sy), "score": round(face.score, 6)},
                             "value": value})
                if value["name"]:
                    best[value["name"]] = max(best.get(value["name"], -1.0), value["score"])
            result: dict[str, Any] = {"detections": dets}
            if not self.value_group:
                result = {"review": any(d["value"]["review"] for d in dets), "detections": dets}
            labels = [Label(name, score) for name, score in sorted(best.items(), key=lambda kv: -kv[1])]
            out.append(CutOutput(labels=labels, result=result))
        return out

    def _value(self, m: Match | None, threshold: float) -> dict[str, Any]:
        if m is not None and m.score >= threshold:
            review = needs_review(m.score, m.runner_up, threshold)
            value = {"name": m.name, "id": m.id, "score": round(m.score, 6), "review": review}
            if self.value_group:
                value["group"] = str(m.meta.get("group", ""))
            return value
        value = {"name": "", "id": "", "score": round(m.score, 6) if m is not None else 0.0, "review": False}
        if self.value_group:
            value["group"] = ""
        return value

    def _warn(self, group: str, exc: ArgusError) -> None:
        if group not in self._warned:
            self._warned.add(group)
            log.warning("%s: gallery %r unusable (%s %s): frames get no result", self.name, group, exc.message,
                        exc.detail)


class FaceGroupSearchOp(_FaceSearchOp):
    name = "face_group_search"
    other_params = {"threshold": SCORE, "group": Text()}
    description = ("names of people enrolled in the gallery params.other.group (FaceBoxes + BlazeFace + "
                   "FaceRes, cosine ≥ params.other.threshold, default 0.6); unknown faces give no label")

    def check_params(self, params: OpParams) -> None:
        """400 when ``params.other.group`` is missing, not a gallery name, or names no gallery."""
        super().check_params(params)  # the declared params.other keys, their types first
        group = (params.other or {}).get("group")
        if group is None or group == "":
            raise MissingGroup()
        if not isinstance(group, str):
            raise InvalidRequest(detail="face_group_search: params.other.group must be a string (a gallery name)",
                                 public=True)
        try:
            check_group_name(group)
        except ArgusError:
            raise InvalidRequest(detail="face_group_search: params.other.group is not a valid gallery name "
                                        "(letters, digits, '_', '-', '.')", public=True) from None
        store = self.store or GalleryStore(options=self.options, models_dir=self.models_dir)
        if not store.has_group(group):
            raise UnknownGroup(group)

    def group_of(self, p: OpParams) -> str | None:
        group = (p.other or {}).get("group")
        try:
            return check_group_name(group)
        except ArgusError:
            key = f"<invalid:{group!r}>"
            if key not in self._warned:
                self._warned.add(key)
                log.warning("face_group_search: params.other.group %r is not a gallery name", group)
            return None


class PoliticianOp(_FaceSearchOp):
    name = "politician"
    value_group = True
    description = ("names of people in the operator's politician gallery (options['politician_gallery']); "
                   "not available when none is configured")

    def __init__(self, models_dir: Path | None = None, options: dict[str, Any] | None = None) -> None:
        super().__init__(models_dir, options)
        self.gallery_name = self.options.get("politician_gallery") or None

    def check_config(self) -> None:
        if not self.gallery_name:
            raise NotConfigured("politician: no gallery configured (set the operator option "
                                "politician_gallery to the name of a face gallery)")
        try:
            check_group_name(self.gallery_name)
        except ArgusError:
            raise NotConfigured(f"politician: politician_gallery {self.gallery_name!r} is not a valid gallery "
                                "name") from None

    def check_galleries(self) -> None:
        assert self.store is not None
        if not self.store.has_group(self.gallery_name):
            raise NotConfigured(f"politician: gallery {self.gallery_name!r} does not exist in {self.store.root}")

    def group_of(self, p: OpParams) -> str | None:
        return self.gallery_name


def _threshold(value: Any, default: float) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return default
    return v if math.isfinite(v) and 0.0 <= v <= 1.0 else default
