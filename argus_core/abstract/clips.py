"""Clips (abstract level 1): topic segments over scenes, TextTiling-style; programme (level 0): the whole file.

Each scene is a bag of tokens (ImageNet tags, COCO classes, OCR tokens, face/person ids) plus a mean colour
histogram. At each gap between scenes the cohesion of the ``k`` scenes before and after is the mean of the
bags' cosine and the histograms' intersection; a gap's *depth* is how far cohesion dips there below the peaks
on either side (Hearst 1997). Gaps deeper than ``mean - std/2`` of the depths become clip boundaries, kept only
when both sides stay ≥ ``min_ms`` (30 s) — deepest first — and clips longer than ``max_ms`` (5 min) are cut at
their deepest inner gap. Pure.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence

import msgspec
import numpy as np


class SceneEvidence(msgspec.Struct, frozen=True):
    start_ms: int
    end_ms: int
    tokens: list[str] = []
    histogram: list[float] = []


class Clip(msgspec.Struct, frozen=True):
    index: int
    first_scene: int
    last_scene: int
    start_ms: int
    end_ms: int


def _cos(a: Counter, b: Counter) -> float:
    if not a or not b:
        return 0.0
    num = sum(a[k] * b[k] for k in a.keys() & b.keys())
    den = (sum(v * v for v in a.values()) * sum(v * v for v in b.values())) ** 0.5
    return num / den if den else 0.0


def _hist_sim(a: Sequence[float], b: Sequence[float]) -> float | None:
    if not len(a) or not len(b):
        return None
    ha, hb = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.minimum(ha, hb).sum()) / max(1, round(ha.sum()))


def gap_cohesion(scenes: Sequence[SceneEvidence], k: int = 2) -> list[float]:
    """Cohesion at each of the ``len(scenes) - 1`` gaps (0..1, high = same topic)."""
    out = []
    for g in range(1, len(scenes)):
        left, right = scenes[max(0, g - k):g], scenes[g:g + k]
        bl = Counter(t for s in left for t in s.tokens)
        br = Counter(t for s in right for t in s.tokens)
        parts = [_cos(bl, br)] if (bl or br) else []
        hl = np.mean([s.histogram for s in left], axis=0) if all(len(s.histogram) for s in left) else []
        hr = np.mean([s.histogram for s in right], axis=0) if all(len(s.histogram) for s in right) else []
        h = _hist_sim(list(hl), list(hr))
        if h is not None:
            parts.append(h)
        out.append(float(np.mean(parts)) if parts else 1.0)
    return out


def depths(coh: Sequence[float]) -> list[float]:
    """TextTiling depth score of each gap: (left peak - c) + (right peak - c)."""
    out = []
    for i, c in enumerate(coh):
        lp = max(coh[: i + 1])
        rp = max(coh[i:])
        out.append((lp - c) + (rp - c))
    return out


def segment_clips(scenes: Sequence[SceneEvidence], min_ms: int = 30_000, max_ms: int = 300_000,
                  k: int = 2) -> list[Clip]:
    """Clips over ``scenes`` (time order); see the module docstring. A video shorter than ``2·min_ms`` is one
    clip."""
    n = len(scenes)
    if n == 0:
        return []
    d = depths(gap_cohesion(scenes, k))
    cuts: set[int] = set()              # gap g: between scene g-1 and g
    if d:
        thr = float(np.mean(d) - np.std(d) / 2)
        for g in sorted(range(1, n), key=lambda g: -d[g - 1]):
            if d[g - 1] <= 0 or d[g - 1] < thr:
                break
            if _fits(scenes, cuts | {g}, min_ms):
                cuts.add(g)
        changed = True
        while changed:                  # split any clip still longer than max_ms at its deepest gap
            changed = False
            edges = [0, *sorted(cuts), n]
            for a, b in zip(edges, edges[1:]):
                if scenes[b - 1].end_ms - scenes[a].start_ms > max_ms and b - a > 1:
                    g = max(range(a + 1, b), key=lambda g: d[g - 1])
                    cuts.add(g)
                    changed = True
                    break
    edges = [0, *sorted(cuts), n]
    return [Clip(i, a, b - 1, scenes[a].start_ms, scenes[b - 1].end_ms) for i, (a, b) in
            enumerate(zip(edges, edges[1:]))]


def _fits(scenes: Sequence[SceneEvidence], cuts: set[int], min_ms: int) -> bool:
    edges = [0, *sorted(cuts), len(scenes)]
    return all(scenes[b - 1].end_ms - scenes[a].start_ms >= min_ms for a, b in zip(edges, edges[1:]))


def programme(duration_ms: int) -> Clip:
    """Level 0: the whole file."""
    return Clip(0, 0, 0, 0, int(duration_ms))
