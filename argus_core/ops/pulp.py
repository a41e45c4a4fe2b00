"""``pulp``: porn / sexy / normal with the nsfwjs MobileNetV2 model (CONTRACT §3).

nsfwjs has five classes; the contract's three labels merge them: "0" porn = Porn + Hentai, "1" sexy = Sexy,
"2" normal = Neutral + Drawing. Exactly one label per cut; ``review`` when the winning score is below 0.6.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..frames import Frame
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Op, stack_views

PULP_CLASSES = ("porn", "sexy", "normal")
REVIEW_BELOW = 0.6
# nsfwjs label → contract class index
_MERGE = {"Porn": 0, "Hentai": 0, "Sexy": 1, "Neutral": 2, "Drawing": 2}


class PulpOp(Op):
    name = "pulp"
    models = ("nsfwjs",)
    description = 'porn "0" / sexy "1" / normal "2" (nsfwjs MobileNetV2)'

    def __init__(self, models_dir=None, options=None) -> None:
        super().__init__(models_dir, options)
        labels = self.manifests["nsfwjs"].labels
        # matrix mapping the model's classes onto the three contract classes
        self._merge = np.zeros((len(labels), 3), dtype=np.float32)
        for i, name in enumerate(labels):
            self._merge[i, _MERGE[name]] = 1.0

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        spec = self.specs()[0]
        probs = self.model().run_images(stack_views(frames, spec))[0]
        merged = np.asarray(probs, dtype=np.float64) @ self._merge.astype(np.float64)
        return [self._cut(row) for row in merged]

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
