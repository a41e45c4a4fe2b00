"""The moderator's verdict (CONTRACT §14): ``suggestion`` ∈ ``pass | review | block`` per cut, segment, op and video.

A pass over a finished (or streamed) result that only **adds** ``suggestion`` keys; every seed field keeps its
value and shape. Pure logic, no IO: the HTTP service, the CLI and embedders call it on the result dicts.

Rule (Qiniu v3 censor, ORIGINAL-BEHAVIOUR §14): a cut's suggestion comes from its labels and the op's
:class:`Policy`; a segment takes the worst of its cuts, an op the worst of its segments, the video the worst
of its ops — ``block`` > ``review`` > ``pass``.

Per cut, for each label ``(name, score)`` the cut carries:

* ``score >= policy.block[name]`` → ``block``; else ``score >= policy.review[name]`` → ``review``;
  a ``"*"`` key stands for every label the map does not name;
* when ``policy.review_flag`` and the op's result says it is unsure (``result.review`` true, or a face with
  ``value.review`` true), the cut is ``review`` — never auto-blocked and never auto-passed, as Qiniu's
  mapping did for pulp "0", terror "1" and politician faces.

A cut's labels are read back from its ``result`` (``label``/``score`` of pulp and terror, ``detections[].class``
of detection ops, ``value.name`` of face search, ``confidences[].class`` of classifiers) and kept only where
the segment kept that label name, so labels dropped by the §4 filter never count. A result of another shape
(OCR keywords, a user's own op) takes the segment's labels (its max scores: an upper bound).

Policies, weakest layer first (each layer updates the one below label by label; ``null`` deletes an entry):
:data:`DEFAULTS` < server config ``verdict_policy: {op: policy}`` < request ``ops[].params.other.suggestion``.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import msgspec

from .errors import InvalidRequest

PASS, REVIEW, BLOCK = "pass", "review", "block"
_RANK = {PASS: 0, REVIEW: 1, BLOCK: 2}
_BY_RANK = (PASS, REVIEW, BLOCK)
ANY = "*"
#: key of ``ops[].params.other`` that carries a request's policy for that op
OTHER_KEY = "suggestion"
#: HTTP header of the sync response carrying the whole video's verdict (the body stays ``{op: ...}``)
HEADER = "X-Argus-Suggestion"


class Policy(msgspec.Struct, frozen=True):
    """Thresholds of one op: label → minimum score (0..1) that makes a cut ``block`` / ``review``."""

    block: dict[str, float] = {}
    review: dict[str, float] = {}
    #: an op result saying ``review: true`` makes the cut ``review``
    review_flag: bool = False


#: Built-in policy per op (ops not listed: everything passes unless a policy names labels).
#: pulp "0" porn blocks from 0.6 (the op's own review bound, so a confident porn frame blocks and an unsure
#: one is reviewed), "1" sexy is reviewed; terror "1" likewise; evidence-only terror ops and recognised
#: politicians go to a human; detection, image_label, ocr and face_group_search pass by default.
DEFAULTS: dict[str, Policy] = {
    "pulp": Policy(block={"0": 0.6}, review={"0": 0.0, "1": 0.0}, review_flag=True),
    "terror": Policy(block={"1": 0.6}, review={"1": 0.0}, review_flag=True),
    "terror_detect": Policy(review={ANY: 0.0}),
    "terror_classify": Policy(review={ANY: 0.0}),
    "politician": Policy(review={ANY: 0.0}, review_flag=True),
}


def worst(suggestions: Iterable[str]) -> str:
    """``block`` if any is block, else ``review`` if any is review, else ``pass`` (empty → pass)."""
    rank = 0
    for s in suggestions:
        rank = max(rank, _RANK.get(s, 0))
        if rank == 2:
            break
    return _BY_RANK[rank]


# -- policies ------------------------------------------------------------------------------------------
def _bad(where: str, why: str) -> InvalidRequest:
    return InvalidRequest(detail=f"{where}: {why}")


def _thresholds(where: str, raw: Any) -> dict[str, float | None]:
    if not isinstance(raw, Mapping):
        raise _bad(where, "expected an object {label: score}")
    out: dict[str, float | None] = {}
    for label, score in raw.items():
        if score is None:
            out[str(label)] = None
            continue
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
                or not 0.0 <= score <= 1.0:
            raise _bad(f"{where}.{label}", "score must be a number in [0, 1] or null")
        out[str(label)] = float(score)
    return out


def _layer(base: Policy, raw: Any, where: str) -> Policy:
    """``base`` updated by one layer ``{block?, review?, review_flag?}``."""
    if raw is None:
        return base
    if not isinstance(raw, Mapping):
        raise _bad(where, "expected an object {block?, review?, review_flag?}")
    unknown = set(raw) - {"block", "review", "review_flag"}
    if unknown:
        raise _bad(where, f"unknown keys {sorted(unknown)}")
    maps = {"block": dict(base.block), "review": dict(base.review)}
    for key in ("block", "review"):
        if key in raw:
            for label, score in _thresholds(f"{where}.{key}", raw[key]).items():
                if score is None:
                    maps[key].pop(label, None)
                else:
                    maps[key][label] = score
    flag = raw.get("review_flag", base.review_flag)
    if not isinstance(flag, bool):
        raise _bad(f"{where}.review_flag", "must be true or false")
    return Policy(block=maps["block"], review=maps["review"], review_flag=flag)


def check_config(config: Any) -> dict[str, Any]:
    """Validate the server setting ``verdict_policy`` (``{op: policy}``); raises ``ValueError``."""
    if not isinstance(config, Mapping):
        raise ValueError("verdict_policy: expected a table {op: {block, review, review_flag}}")
    for op, raw in config.items():
        try:
            _layer(Policy(), raw, f"verdict_policy.{op}")
        except InvalidRequest as exc:
            raise ValueError(exc.detail) from None
    return dict(config)


def policy_for(op: str, other: Mapping[str, Any] | None = None,
               config: Mapping[str, Any] | None = None) -> Policy:
    """The policy of ``op``: built-in < ``config[op]`` < ``other["suggestion"]`` (an op's ``params.other``).

    Raises :class:`InvalidRequest` (400 ``invalid parameters`` + detail) on a malformed request policy.
    """
    policy = DEFAULTS.get(op, Policy())
    if config and op in config:
        policy = _layer(policy, config[op], f"verdict_policy.{op}")
    if other and OTHER_KEY in other:
        policy = _layer(policy, other[OTHER_KEY], f"ops[{op}].params.other.{OTHER_KEY}")
    return policy


def policies_of(request: Any, config: Mapping[str, Any] | None = None) -> dict[str, Policy]:
    """``{op: Policy}`` for a request (a raw body dict or a parsed :class:`~argus_core.request.VideoRequest`).

    Call it when the request arrives, so a bad policy is a 400 before any decoding."""
    out: dict[str, Policy] = {}
    ops = request.get("ops") if isinstance(request, Mapping) else getattr(request, "ops", None)
    for op in ops or []:
        if isinstance(op, Mapping):
            name, params = op.get("op"), op.get("params") or {}
            other = params.get("other") if isinstance(params, Mapping) else None
        else:
            name, other = op.op, op.params.other
        if not isinstance(name, str):
            continue
        if other is not None and not isinstance(other, Mapping):
            other = None
        out[name] = policy_for(name, other, config)
    return out


# -- per cut -------------------------------------------------------------------------------------------
def cut_labels(result: Any) -> list[tuple[str, float]] | None:
    """The ``(label, score)`` pairs an op's cut ``result`` shows, or None for a shape this module cannot read."""
    if not isinstance(result, Mapping):
        return [] if result is None else None
    if "label" in result and isinstance(result.get("score"), (int, float)):
        return [(str(result["label"]), float(result["score"]))]
    out: list[tuple[str, float]] = []
    if isinstance(result.get("detections"), list):
        for d in result["detections"]:
            if not isinstance(d, Mapping):
                continue
            value = d.get("value")
            if isinstance(value, Mapping):  # face search: the person's name
                if value.get("name") and isinstance(value.get("score"), (int, float)):
                    out.append((str(value["name"]), float(value["score"])))
            elif "class" in d and isinstance(d.get("score"), (int, float)):
                out.append((str(d["class"]), float(d["score"])))
        return out
    if isinstance(result.get("confidences"), list):
        for c in result["confidences"]:
            if isinstance(c, Mapping) and "class" in c and isinstance(c.get("score"), (int, float)):
                out.append((str(c["class"]), float(c["score"])))
        return out
    return None


def _unsure(result: Any) -> bool:
    if not isinstance(result, Mapping):
        return False
    if result.get("review") is True:
        return True
    dets = result.get("detections")
    return isinstance(dets, list) and any(
        isinstance(d, Mapping) and isinstance(d.get("value"), Mapping) and d["value"].get("review") is True
        and d["value"].get("name") for d in dets)


def _threshold(table: Mapping[str, float], label: str) -> float | None:
    t = table.get(label)
    return table.get(ANY) if t is None else t


def label_suggestion(label: str, score: float, policy: Policy) -> str:
    t = _threshold(policy.block, label)
    if t is not None and score >= t:
        return BLOCK
    t = _threshold(policy.review, label)
    if t is not None and score >= t:
        return REVIEW
    return PASS


def cut_suggestion(result: Any, policy: Policy, segment_labels: Iterable[Mapping[str, Any]] = ()) -> str:
    """One cut's suggestion from its ``result``; ``segment_labels`` are its segment's ``labels``."""
    seg = {str(lab["label"]): float(lab["score"]) for lab in segment_labels}
    shown = cut_labels(result)
    if shown is None:
        labels = list(seg.items())
    else:
        best: dict[str, float] = {}
        for name, score in shown:
            if name in seg and score > best.get(name, -1.0):
                best[name] = score
        labels = list(best.items())
    if policy.review_flag and _unsure(result):
        return REVIEW
    return worst(label_suggestion(name, score, policy) for name, score in labels)


# -- passes over the result ----------------------------------------------------------------------------
def annotate_segment(segment: dict[str, Any], policy: Policy) -> str:
    """Adds ``suggestion`` to each cut of ``segment`` and to the segment; returns the segment's."""
    labels = segment.get("labels") or []
    for cut in segment.get("cuts") or []:
        cut["suggestion"] = cut_suggestion(cut.get("result"), policy, labels)
    segment["suggestion"] = worst(c["suggestion"] for c in segment.get("cuts") or [])
    return segment["suggestion"]


def annotate_op(op_result: dict[str, Any], policy: Policy) -> str:
    """Adds ``suggestion`` to an op's ``{labels, segments}`` (and below); returns the op's."""
    op_result["suggestion"] = worst([annotate_segment(s, policy) for s in op_result.get("segments") or []])
    return op_result["suggestion"]


def annotate(result: dict[str, Any], policies: Mapping[str, Policy] | None = None,
             config: Mapping[str, Any] | None = None) -> str:
    """Adds ``suggestion`` throughout a ``{op: {labels, segments}}`` result; returns the video's verdict.

    ``policies`` from :func:`policies_of`; an op missing there gets :func:`policy_for` with ``config``."""
    policies = policies or {}
    out = []
    for op, res in result.items():
        if isinstance(res, dict):
            out.append(annotate_op(res, policies.get(op) or policy_for(op, None, config)))
    return worst(out)


def overall(result: Mapping[str, Any] | None) -> str | None:
    """The video's verdict from an annotated result's op ``suggestion`` fields; None when some op has none
    (a result that never went through :func:`annotate`, e.g. posted by a foreign queue worker)."""
    ops = [r for r in (result or {}).values() if isinstance(r, Mapping)]
    if any(not isinstance(r.get("suggestion"), str) for r in ops):
        return None
    return worst(r["suggestion"] for r in ops)
