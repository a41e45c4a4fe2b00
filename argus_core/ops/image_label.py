"""``image_label``: ImageNet-1k labels with MobileNetV2 (CONTRACT §3), and helpers the vision ops share.

Result per cut: ``{"confidences": [{"class", "score"}]}`` — the top ``k`` classes (default 5) whose softmax
probability is at least the threshold (default 0.1), best first; labels = every class in it. Per request,
``params.other.topk`` and ``params.other.threshold`` override both.

The frame is rendered ``cover`` at the model size (short side → 224, aspect kept) and the centre 224×224
is classified, like torchvision's evaluation crop (see ``models/mobilenetv2/README.md``).

Shared helpers (used by ``detection`` and the terror ops as well; parameter readers are in ``ops/params.py``):

* :func:`shared_model` — ops of one worker that need the same model share one onnxruntime session.
* :class:`FrameMemo` — a model's per-frame output, memoised by a digest of the exact input pixels, so
  ``image_label`` + ``terror`` (or ``detection`` + ``terror_detect``) on the same frame run the model once.
"""

from __future__ import annotations

from ..aggregate import LABEL_FLOOR, floor_labels

import hashlib
import logging
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..media.renditions import Frame, FrameSpec, centre_crop
from ..post.scores import softmax, top_k
from .params import SCORE, Number, other_float, other_int
from ..runtime.manifest import Manifest
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Model, Op, load_model

log = logging.getLogger("argus.ops")

# -- shared by the vision ops -------------------------------------------------------------------------

# One session per (model folder, providers, threads) per process while any op holds it. Weak values:
# ``check_ready`` loads and drops models, and nothing should keep them alive after that.
_SESSIONS: "weakref.WeakValueDictionary[tuple, Model]" = weakref.WeakValueDictionary()


def shared_model(folder: Path, providers: list[str] | None, threads: int) -> Model:
    """The loaded (and output-verified) model in ``folder``, shared by the ops of this process."""
    key = (str(Path(folder).resolve()), tuple(providers or ()), threads)
    model = _SESSIONS.get(key)
    if model is None:
        model = Model(folder, providers=providers, threads=threads)
        _SESSIONS[key] = model
    return model


class VisionOp(Op):
    """An op whose models are shared with the other vision ops of the worker (no ``name``: not an op)."""

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        for m in self.models:
            if m not in self.loaded:
                self.loaded[m] = load_model(self.models_dir, m, self.options, providers, threads, shared_model)


def spec_of(manifest: Manifest) -> FrameSpec:
    """The rendition a model reads, as its manifest describes it."""
    i = manifest.input
    return FrameSpec(i.width, i.height, i.resize, i.max_side)


class FrameMemo:
    """Per-frame results of one model, keyed by a digest of the exact input pixels (LRU, per process).

    Ops run one after another on the same batch in a worker, so a capacity of a few batches is enough
    for every op of that batch to find what the first one computed. The key is the content, not the frame's
    slot or offset: ring slots are reused, and two jobs may share offsets.
    """

    def __init__(self, capacity: int = 64) -> None:
        self.capacity = capacity
        self._items: OrderedDict[bytes, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def rows(self, images: np.ndarray, compute: Callable[[np.ndarray], Sequence[Any]]) -> list[Any]:
        """One result per image of the C-contiguous batch ``images``; ``compute`` runs on the misses only
        and returns one result per image it was given."""
        images = np.ascontiguousarray(images)
        keys = [hashlib.blake2b(images[i], digest_size=16).digest() for i in range(len(images))]
        found: dict[bytes, Any] = {}
        for k in keys:
            if k in self._items:
                self._items.move_to_end(k)
                found[k] = self._items[k]
        missing = [i for i, k in enumerate(keys) if k not in found]
        # a batch may hold the same picture twice: compute it once
        first: dict[bytes, int] = {}
        for i in missing:
            first.setdefault(keys[i], i)
        self.hits += len(keys) - len(missing)
        self.misses += len(first)
        if first:
            idx = list(first.values())
            for i, value in zip(idx, compute(images[idx])):
                found[keys[i]] = value
                self._items[keys[i]] = value
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return [found[k] for k in keys]


_MEMOS: dict[tuple[str, str], FrameMemo] = {}


def memo_for(model: Model, what: str) -> FrameMemo:
    """The process-wide memo of ``what`` (e.g. "probs") computed by ``model``."""
    key = (str(model.folder.resolve()), what)
    if key not in _MEMOS:
        _MEMOS[key] = FrameMemo()
    return _MEMOS[key]


def classify(model: Model, frames: Sequence[Frame]) -> np.ndarray:
    """``[N, C]`` softmax probabilities of the centre crop of each frame's model rendition (memoised)."""
    spec = spec_of(model.manifest)
    w, h = model.manifest.input.width, model.manifest.input.height
    batch = np.stack([centre_crop(f.views[spec], w, h) for f in frames])
    rows = memo_for(model, "probs").rows(batch, lambda b: softmax(model.run_images(b)[0]))
    return np.stack(rows)


def round6(x: float) -> float:
    return round(float(x), 6)


# -- the op --------------------------------------------------------------------------------------------

DEFAULT_TOPK = 5
DEFAULT_THRESHOLD = 0.1


class ImageLabelOp(VisionOp):
    name = "image_label"
    other_params = {"topk": Number(0, 100000, integer=True), "threshold": SCORE}
    models = ("mobilenetv2",)
    description = ("ImageNet-1k labels (MobileNetV2, centre crop): top-k classes above a threshold; "
                   "params.other.topk (default 5), params.other.threshold (default 0.1)")

    def __init__(self, models_dir=None, options=None) -> None:
        super().__init__(models_dir, options)
        man = self.manifests["mobilenetv2"]
        self.labels = list(man.labels)
        # defaults from the manifest's decoding params when present, else ours
        self.default_topk = int(man.params.get("top_k", DEFAULT_TOPK))
        self.default_threshold = float(man.params.get("min_score", DEFAULT_THRESHOLD))

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        probs = classify(self.model(), frames)
        return [self._cut(row, p) for row, p in zip(probs, params)]

    def _cut(self, row: np.ndarray, p: OpParams) -> CutOutput:
        k = other_int(p, "topk", self.default_topk, 0, len(self.labels))
        threshold = other_float(p, "threshold", self.default_threshold)
        best = top_k(row, self.labels, k, threshold)
        confidences = [{"class": name, "score": round6(s)} for _i, name, s in best]
        labels = [Label(c["class"], c["score"]) for c in confidences]
        if (p.other or {}).get("threshold") is None:
            labels = floor_labels(labels, LABEL_FLOOR["image_label"])
        return CutOutput(labels=labels, result={"confidences": confidences})
