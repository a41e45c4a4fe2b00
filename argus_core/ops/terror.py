"""Terror ops built from evidence real models can see: ``terror_detect``, ``terror``, ``terror_classify``.

No terror, gun-box, flag, blood or fight model exists offline (``shared/MODELS.md``). So these ops report
only *evidence*, and say which kinds they cannot see:

* COCO ``knife`` boxes from NanoDet (the ``detection`` model);
* weapon-like ImageNet classes from MobileNetV2 (the ``image_label`` model) — whole-image classes with
  **no box** (``pts: []``): assault rifle, rifle, revolver, cleaver, cannon, tank, half track, missile,
  projectile, military uniform, bulletproof vest;
* text from OCR matching operator-configured keyword lists / scripts (:func:`ocr_reader`, the ``ocr`` op's
  model), when the operator configures them.

Evidence is grouped into the detail classes of the original ``terror`` API (``video-terror-api-v1.md``):
``knives`` (knife, cleaver), ``guns`` (assault rifle, rifle, revolver), ``special_clothing`` (military
uniform, bulletproof vest), ``special_characters`` (OCR text, when configured), plus one Argus extension,
``heavy_weapons`` (cannon, tank, half track, missile, projectile), which no original class covers. A
group's score is the largest of: the summed ImageNet probability of its classes (they are mutually
exclusive classes of one softmax, so the sum is the probability of "any of them"), its best box score,
its best text-line score. The other original classes (bloodiness, self_burning, beheaded, march_crowed,
fight_police, fight_person, illegal_flag, anime_*) have no model: every result lists them as
``unsupported``; a "0" never means they were checked.

Scores are the models' own numbers; nothing is guessed. ``params.other.threshold`` is raised to at least
0.05 (:data:`~argus_core.ops.detection.SCORE_FLOOR`). A user's own terror model replaces these ops
through a model manifest (bring-your-own models).
"""

from __future__ import annotations

import logging
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence


from ..post.boxes import corner_points
from ..media.renditions import Frame, FrameSpec
from ..post.scores import class_indices
from ..runtime.manifest import ModelError
from ..request import OpParams
from ..result import Label
from .base import CutOutput
from .detection import SCORE_FLOOR, NanoDet
from .image_label import VisionOp, classify, round6
from .params import SCORE, Flag, other_bool, other_float

log = logging.getLogger("argus.ops")

#: detail classes of the original terror API, in its documented order (the ``index`` of terror_classify)
ORIGINAL_CLASSES = (
    "bloodiness", "self_burning", "beheaded", "march_crowed", "fight_police", "fight_person",
    "illegal_flag", "knives", "guns", "special_characters", "anime_bloodiness", "special_clothing",
    "anime_knives", "anime_guns",
)
#: Argus extension: military hardware, which the original taxonomy has no class for
EXTRA_CLASSES = ("heavy_weapons",)
TERROR_CLASSES = ORIGINAL_CLASSES + EXTRA_CLASSES

# model class → detail class. ImageNet names are checked against the model's labels at start-up.
IMAGENET_EVIDENCE: dict[str, str] = {
    "assault rifle": "guns",
    "rifle": "guns",
    "revolver": "guns",
    "cleaver": "knives",
    "cannon": "heavy_weapons",
    "tank": "heavy_weapons",
    "half track": "heavy_weapons",
    "missile": "heavy_weapons",
    "projectile": "heavy_weapons",
    "military uniform": "special_clothing",
    "bulletproof vest": "special_clothing",
}
COCO_EVIDENCE: dict[str, str] = {"knife": "knives"}
TEXT_GROUP = "special_characters"

#: A whole-image ImageNet group (no box) alone says terror "1" only at this score or above. Calibrated on
#: real footage (models/EVAL.md): on 149 benign cuts the strongest weapon-like sum was 0.51, heavy_weapons
#: ("half track" 0.30 + "cannon" …) on a parked bicycle (bikes@9); "cannon" reaches 0.13 on other bicycles.
IMAGENET_ALONE = 0.75
#: …or at the request's threshold when a second signal confirms it: a COCO box (score ≥ CONTEXT_MIN) of one
#: of these classes in the same frame (a gun or a uniform is carried by a person; a tank, half track or
#: missile launcher is seen by COCO as a vehicle; a cleaver next to a knife box).
CONFIRMED_BY: dict[str, tuple[str, ...]] = {
    "guns": ("person",),
    "special_clothing": ("person",),
    "knives": ("knife",),
    "heavy_weapons": ("truck", "car", "bus", "train", "boat", "airplane"),
}
CONTEXT_MIN = 0.5
CONTEXT_MODEL = "nanodet-context"

#: what no model here can see (special_characters becomes supported once OCR text evidence is wired)
UNSUPPORTED = tuple(c for c in ORIGINAL_CLASSES
                    if c not in set(IMAGENET_EVIDENCE.values()) | set(COCO_EVIDENCE.values()))

DEFAULT_DETECT_THRESHOLD = 0.35  # terror_detect: same as ``detection``
DEFAULT_THRESHOLD = 0.5  # terror / terror_classify: a group must be more likely than not
#: ``review`` is set when the strongest evidence is this close to the threshold (either side)
REVIEW_MARGIN = 0.15


@dataclass(frozen=True)
class Evidence:
    """One observation: ``cls`` what the model saw, ``group`` its detail class, ``model`` which model
    (``mobilenetv2``, ``nanodet``, ``ocr``), ``pts`` its box corners in frame pixels ([] = whole image)."""

    cls: str
    group: str
    score: float
    model: str
    pts: list = field(default_factory=list)

    def to_result(self) -> dict[str, Any]:
        return {"class": self.cls, "score": round6(self.score), "model": self.model, "pts": self.pts}


# -- OCR text evidence (hook) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TextLine:
    """A line read by OCR: its text, the recogniser's score, its corner points in frame pixels."""

    text: str
    score: float
    pts: list = field(default_factory=list)


# Unicode blocks per script, for operators who list a script as evidence (``terror_scripts``).
SCRIPT_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "arabic": ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFF)),
    "syriac": ((0x0700, 0x074F),),
    "hebrew": ((0x0590, 0x05FF),),
    "tibetan": ((0x0F00, 0x0FFF),),
}
#: a line counts as "in a script" when at least this share of its letters belong to it
SCRIPT_SHARE = 0.5


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def keyword_lists(config: Mapping[str, Sequence[str]] | Sequence[str] | None) -> dict[str, list[str]]:
    """Operator keyword config → ``{group: [normalised keywords]}``. A plain list files its keywords
    under ``special_characters``; a mapping names the group of each list (one of :data:`TERROR_CLASSES`)."""
    if not config:
        return {}
    if isinstance(config, str):
        raise ValueError("terror_keywords must be a list of keywords or a {class: [keywords]} mapping")
    items = config.items() if isinstance(config, Mapping) else [(TEXT_GROUP, config)]
    out: dict[str, list[str]] = {}
    for group, words in items:
        if group not in TERROR_CLASSES:
            raise ValueError(f"terror_keywords: unknown class {group!r} (one of {list(TERROR_CLASSES)})")
        if isinstance(words, str):
            raise ValueError(f"terror_keywords[{group!r}] must be a list of strings")
        out[group] = [_norm(w) for w in words if isinstance(w, str) and w.strip()]
    return out


def in_script(text: str, script: str) -> bool:
    """Whether at least :data:`SCRIPT_SHARE` of the letters of ``text`` are in ``script``'s blocks."""
    ranges = SCRIPT_RANGES[script]
    letters = [ord(ch) for ch in text if ch.isalpha()]
    if not letters:
        return False
    hits = sum(any(lo <= c <= hi for lo, hi in ranges) for c in letters)
    return hits / len(letters) >= SCRIPT_SHARE


def text_evidence(lines: Sequence[TextLine], keywords: Mapping[str, Sequence[str]],
                  scripts: Sequence[str] = ()) -> list[Evidence]:
    """Evidence from OCR lines: a line containing a configured keyword (case-insensitive, NFKC) or written
    in a configured script. Its score is the OCR line's own score — the keyword match itself is exact.

    ``keywords`` as returned by :func:`keyword_lists`; ``scripts`` are keys of :data:`SCRIPT_RANGES`.
    """
    out: list[Evidence] = []
    for line in lines:
        text = _norm(line.text)
        for group, words in keywords.items():
            for w in words:
                if w and w in text:
                    out.append(Evidence(f"keyword:{w}", group, float(line.score), "ocr", list(line.pts)))
        for s in scripts:
            if in_script(line.text, s):
                out.append(Evidence(f"script:{s}", TEXT_GROUP, float(line.score), "ocr", list(line.pts)))
    return out


OcrReader = Callable[[Sequence[Frame]], list[list[TextLine]]]


def ocr_reader(models_dir: Any, options: Mapping[str, Any]) -> tuple[OcrReader, Any] | None:
    """OCR text evidence: (a function reading the text lines of each frame, the ``ocr`` op behind it), or
    None when OCR is not installed or its model fails its check (text evidence then stays unsupported)."""
    try:
        from .ocr import OcrOp

        ocr = OcrOp(models_dir, options)
    except Exception as exc:  # rapidocr missing, or its manifest / files do not match
        log.warning("terror: OCR unavailable, text evidence stays unsupported: %s", exc)
        return None

    def read(frames: Sequence[Frame]) -> list[list[TextLine]]:
        return [[TextLine(t["text"], float(t["score"]), list(t["pts"])) for t in lines]
                for lines in ocr.read_frames(frames)]

    return read, ocr


# -- the ops -----------------------------------------------------------------------------------------------


class TerrorBase(VisionOp):
    other_params = {"threshold": SCORE, "detail": Flag()}
    """Gathers the evidence of each frame (no ``name``: not an op itself).

    Operator options (``Engine(options=...)``): ``terror_keywords`` (a list, or ``{class: [keywords]}``)
    and ``terror_scripts`` (e.g. ``["arabic"]``) — text evidence read by the ``ocr`` op's model (the frames
    then also get OCR's rendition, and OCR runs on every frame of these ops).
    """

    models = ("mobilenetv2", "nanodet")
    default_threshold = DEFAULT_THRESHOLD

    def __init__(self, models_dir=None, options=None) -> None:
        super().__init__(models_dir, options)
        try:
            self._imagenet = class_indices(self.manifests["mobilenetv2"].labels, IMAGENET_EVIDENCE)
            coco = class_indices(self.manifests["nanodet"].labels, COCO_EVIDENCE)
        except KeyError as exc:  # a model whose labels lack an evidence class cannot back this op
            raise ModelError(f"{self.name}: {exc}") from exc
        self._coco = {i: name for name, i in coco.items()}
        context = {c for names in CONFIRMED_BY.values() for c in names} - set(COCO_EVIDENCE)
        try:
            self._context = {i: n for n, i in class_indices(self.manifests["nanodet"].labels,
                                                            {c: c for c in context}).items()}
        except KeyError as exc:
            raise ModelError(f"{self.name}: {exc}") from exc
        self.keywords = keyword_lists(self.options.get("terror_keywords"))
        scripts = self.options.get("terror_scripts") or []
        self.scripts = [s.lower() for s in ([scripts] if isinstance(scripts, str) else scripts)]
        unknown = [s for s in self.scripts if s not in SCRIPT_RANGES]
        if unknown:
            raise ValueError(f"terror_scripts: unknown {unknown} (one of {list(SCRIPT_RANGES)})")
        wired = ocr_reader(self.models_dir, self.options) if (self.keywords or self.scripts) else None
        self._reader, self._ocr = wired if wired is not None else (None, None)
        if (self.keywords or self.scripts) and self._reader is None:
            log.warning("%s: terror_keywords/terror_scripts configured but no OCR reader: text evidence "
                        "stays unsupported", self.name)
        text_groups = set(self.keywords) | ({TEXT_GROUP} if self.scripts else set())
        groups = set(IMAGENET_EVIDENCE.values()) | set(COCO_EVIDENCE.values())
        if self._reader is not None:
            groups |= text_groups
        #: detail classes some model can give evidence for / that no model covers
        self.supported_groups = [c for c in TERROR_CLASSES if c in groups]
        self.unsupported = [c for c in ORIGINAL_CLASSES if c not in groups]
        #: evidence classes (what terror_detect reports)
        self.supported = list(COCO_EVIDENCE) + list(IMAGENET_EVIDENCE) + (["text"] if self._reader else [])

    def specs(self) -> tuple[FrameSpec, ...]:
        own = super().specs()
        return own + self._ocr.specs() if self._ocr is not None else own

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        super().load(providers, threads)
        if self._ocr is not None:
            self._ocr.load(providers, threads)

    def evidence(self, frames: Sequence[Frame]) -> list[list[Evidence]]:
        """Every piece of evidence per frame, best first (callers apply thresholds): boxes and text down to
        :data:`SCORE_FLOOR`, and *every* weapon-like ImageNet class, however small, because a group's score
        is the sum of its classes' probabilities. Boxes of the :data:`CONFIRMED_BY` classes at
        :data:`CONTEXT_MIN` or above come along as ``model`` :data:`CONTEXT_MODEL` (group ``""``): they are
        not evidence, only what lets a whole-image class count below :data:`IMAGENET_ALONE`."""
        probs = classify(self.model("mobilenetv2"), frames)
        boxes = NanoDet(self.model("nanodet")).detect(frames, [SCORE_FLOOR] * len(frames),
                                                      set(self._coco) | set(self._context))
        texts = self._reader(frames) if self._reader is not None else [[] for _ in frames]
        out = []
        for row, dets, lines in zip(probs, boxes, texts):
            ev = [Evidence(d.cls, COCO_EVIDENCE[d.cls], d.score, "nanodet", corner_points(d.box))
                  for d in dets if d.cls in COCO_EVIDENCE]
            ev += [Evidence(d.cls, "", d.score, CONTEXT_MODEL, corner_points(d.box))
                   for d in dets if d.cls not in COCO_EVIDENCE and d.score >= CONTEXT_MIN]
            ev += [Evidence(name, IMAGENET_EVIDENCE[name], float(row[i]), "mobilenetv2")
                   for name, i in self._imagenet.items()]
            ev += text_evidence(lines, self.keywords, self.scripts)
            ev.sort(key=lambda e: -e.score)
            out.append(ev)
        return out

    def threshold(self, p: OpParams) -> float:
        # at least SCORE_FLOOR: below it every frame would carry (negligible) evidence of every kind
        return other_float(p, "threshold", self.default_threshold, lo=SCORE_FLOOR)


def _by_source(evidence: Sequence[Evidence]) -> tuple[dict[str, float], dict[str, float]]:
    """Per detail class: (summed whole-image ImageNet probability, best box or text-line score); the
    COCO context boxes are not evidence themselves."""
    summed: dict[str, float] = {}
    best: dict[str, float] = {}
    for e in evidence:
        if e.model == CONTEXT_MODEL:
            continue
        if e.model == "mobilenetv2":
            summed[e.group] = summed.get(e.group, 0.0) + e.score
        else:
            best[e.group] = max(best.get(e.group, 0.0), e.score)
    return summed, best


def group_scores(evidence: Sequence[Evidence]) -> dict[str, float]:
    """Score per detail class: the max over sources of (summed ImageNet probability of its classes, best
    box, best text line)."""
    summed, best = _by_source(evidence)
    groups = set(summed) | set(best)
    return {g: min(1.0, max(summed.get(g, 0.0), best.get(g, 0.0))) for g in groups}


def counted_scores(evidence: Sequence[Evidence], threshold: float) -> tuple[dict[str, float], dict[str, float]]:
    """(groups that count at ``threshold``, groups held back) by the evidence rule (README "terror"):

    * a box (knife) or a text line counts at its own score;
    * a whole-image ImageNet group (summed probability, no box) counts at :data:`IMAGENET_ALONE` or above,
      or at ``threshold`` when a :data:`CONFIRMED_BY` box is in the same frame; otherwise it is *held back*
      (reported for review, never a "1").
    """
    context = {e.cls for e in evidence if e.model == CONTEXT_MODEL}
    imagenet, boxed = _by_source(evidence)
    counted: dict[str, float] = dict(boxed)
    held: dict[str, float] = {}
    for g, s in imagenet.items():
        s = min(1.0, s)
        confirmed = any(c in context for c in CONFIRMED_BY.get(g, ()))
        if s >= IMAGENET_ALONE or (confirmed and s >= threshold):
            counted[g] = max(counted.get(g, 0.0), s)
        elif s > counted.get(g, 0.0):
            held[g] = s
    return counted, held


def _best(scores: Mapping[str, float]) -> tuple[str, float]:
    # ties → the earlier class of TERROR_CLASSES, so the verdict is deterministic
    return max(((g, s) for g, s in scores.items()),
               key=lambda gs: (gs[1], -TERROR_CLASSES.index(gs[0])), default=("normal", 0.0))


def decide(evidence: Sequence[Evidence], threshold: float) -> tuple[int, str, float, float, bool]:
    """(label, class, score, strongest, review) for ``terror``.

    label 1 when the strongest *counted* group (:func:`counted_scores`) reaches ``threshold``; its score is
    that group's score. For label 0 the score is ``1 − strongest`` over all groups, counted or held back
    (how far the frame is from any supported evidence), class "normal". ``review`` when the strongest group
    lies within :data:`REVIEW_MARGIN` of the threshold, or a held-back group reaches the threshold.
    """
    counted, held = counted_scores(evidence, threshold)
    group, strongest = _best(counted)
    _, held_best = _best(held)
    top = max(strongest, held_best)
    review = abs(top - threshold) < REVIEW_MARGIN or held_best >= threshold
    if strongest >= threshold:
        return 1, group, strongest, strongest, review
    return 0, "normal", 1.0 - top, top, review


class TerrorDetectOp(TerrorBase):
    name = "terror_detect"
    default_threshold = DEFAULT_DETECT_THRESHOLD
    description = (
        "weapon-like evidence only: COCO knife boxes (NanoDet) and whole-image ImageNet classes with no box, "
        "pts: [] (MobileNetV2: " + ", ".join(IMAGENET_EVIDENCE) + "). No gun/flag/blood model exists: "
        "guns are seen only as whole-image classes. params.other.threshold (default 0.35); each result lists "
        "the supported classes"
    )

    def _index(self, e: Evidence) -> int:
        # text evidence is named after its keyword ("keyword:…"); its index is the one of "text"
        return self.supported.index("text" if e.model == "ocr" else e.cls)

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        out = []
        for ev, p in zip(self.evidence(frames), params):
            thr = self.threshold(p)
            dets = [{"index": self._index(e), "class": e.cls, "score": round6(e.score), "pts": e.pts}
                    for e in ev if e.score >= thr and e.model != CONTEXT_MODEL]
            best: dict[str, float] = {}
            for d in dets:
                best[d["class"]] = max(best.get(d["class"], 0.0), d["score"])
            out.append(CutOutput(labels=[Label(c, s) for c, s in best.items()],
                                 result={"detections": dets, "supported": self.supported}))
        return out


class TerrorOp(TerrorBase):
    name = "terror"
    description = (
        'normal "0" / terror "1" from supported evidence only (knives, guns, special_clothing, heavy_weapons; '
        "see terror_detect) at params.other.threshold (default 0.5); params.other.detail adds class and "
        "the evidence (model class, score, model, pts). Unsupported (no model, never guessed): "
        + ", ".join(UNSUPPORTED)
    )

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        out = []
        for ev, p in zip(self.evidence(frames), params):
            thr = self.threshold(p)
            label, group, score, strongest, review = decide(ev, thr)
            result: dict[str, Any] = {"label": label, "score": round6(score), "review": review}
            if other_bool(p, "detail"):
                result["class"] = group
                # what went into the verdict, for a reviewer (leaving out the negligible)
                result["evidence"] = [e.to_result() for e in ev
                                      if e.score >= SCORE_FLOOR and e.model != CONTEXT_MODEL]
                result["confirmed_by"] = sorted({e.cls for e in ev if e.model == CONTEXT_MODEL})
            result["unsupported"] = self.unsupported
            out.append(CutOutput(labels=[Label(str(label), round6(score))], result=result))
        return out


class TerrorClassifyOp(TerrorBase):
    name = "terror_classify"
    description = (
        "detail classes with evidence at or above params.other.threshold (default 0.5): knives, guns, "
        "special_clothing, heavy_weapons (Argus extension); index = position in the original class list. "
        "Unsupported (no model, never guessed): " + ", ".join(UNSUPPORTED)
    )

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        out = []
        for ev, p in zip(self.evidence(frames), params):
            thr = self.threshold(p)
            scores, _held = counted_scores(ev, thr)
            confidences = [{"index": TERROR_CLASSES.index(g), "class": g, "score": round6(s)}
                           for g, s in sorted(scores.items(), key=lambda gs: (-gs[1], TERROR_CLASSES.index(gs[0])))
                           if s >= thr]
            out.append(CutOutput(labels=[Label(c["class"], c["score"]) for c in confidences],
                                 result={"confidences": confidences, "unsupported": self.unsupported}))
        return out
