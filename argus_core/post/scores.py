"""Score post-processing (pure numpy): the one softmax, sigmoid, top-k above a threshold, class look-up.

Used by ``image_label`` (labels) and the terror ops (weapon-like classes as evidence). The class names come
from the model's manifest (``models/mobilenetv2/manifest.json``), never from a copy kept here.
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``[N, C]`` logits, computed in float64 (the max is subtracted for stability)."""
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def top_k(probs: np.ndarray, labels: Sequence[str], k: int, threshold: float) -> list[tuple[int, str, float]]:
    """The at most ``k`` most probable classes of one row with ``p >= threshold``, best first.

    Class names that occur twice in ImageNet (``crane`` the bird and the machine, ``maillot`` ×2) are
    reported once, with the larger probability: a result keyed by name cannot tell them apart anyway.
    Ties keep the lower class index first (stable sort), so the output is deterministic.
    """
    row = np.asarray(probs, dtype=np.float64).ravel()
    if k <= 0:
        return []
    order = np.argsort(-row, kind="stable")
    out: list[tuple[int, str, float]] = []
    seen: set[str] = set()
    for i in order:
        p = float(row[i])
        if p < threshold or len(out) >= k:
            break
        name = labels[i]
        if name in seen:
            continue
        seen.add(name)
        out.append((int(i), name, p))
    return out


def class_indices(labels: Sequence[str], names: Iterable[str]) -> dict[str, int]:
    """``name → index`` for names that must exist in the model's labels (first occurrence).

    Raises ``KeyError`` naming the missing classes: an evidence table that refers to a class the model
    does not have must fail loudly at load time, not silently report nothing.
    """
    index: dict[str, int] = {}
    for i, name in enumerate(labels):
        index.setdefault(name, i)
    names = list(names)
    missing = [n for n in names if n not in index]
    if missing:
        raise KeyError(f"classes not in the model's labels: {missing}")
    return {n: index[n] for n in names}
