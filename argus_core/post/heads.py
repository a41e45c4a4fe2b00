"""Detector heads in pure numpy: raw model outputs → scored candidate boxes (NanoDet GFL, CenterNet,
YOLOv5/v8).

NanoDet's head gives, for each stride ``s`` (8, 16, 32) and each cell of its ``ceil(W/s) × ceil(H/s)``
grid (row-major), per-class scores (sigmoid already applied in our graph) and a *distribution* over
``reg_max + 1`` bins for each side's distance (l, t, r, b) from the cell centre (Generalized Focal Loss):
the distance is the expectation ``Σ softmax(bins)_k · k``, in units of the stride. See
``models/nanodet/README.md`` for the tensor names and the verified ``+0.5`` centre offset.

Everything here works on plain arrays so it can be table-tested without a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .boxes import Candidates


@dataclass(frozen=True)
class GFLHead:
    """Geometry of a GFL head: input size (model pixels), strides, ``reg_max`` and the cell-centre offset."""

    input_w: int
    input_h: int
    strides: tuple[int, ...] = (8, 16, 32)
    reg_max: int = 10
    center_offset: float = 0.5

    def grid(self, stride: int) -> tuple[int, int]:
        """(columns, rows) of the grid at ``stride``."""
        return math.ceil(self.input_w / stride), math.ceil(self.input_h / stride)


def cell_centres(cols: int, rows: int, stride: int, offset: float = 0.5) -> np.ndarray:
    """``[rows·cols, 2]`` (cx, cy) of each cell in row-major order, in input pixels."""
    ys, xs = np.divmod(np.arange(rows * cols, dtype=np.float64), cols)
    return np.stack([(xs + offset) * stride, (ys + offset) * stride], axis=1)


def distribution_distances(dist: np.ndarray, reg_max: int) -> np.ndarray:
    """GFL integral: ``[n, 4·(reg_max+1)]`` logits → ``[n, 4]`` expected distances in bins (l, t, r, b).

    Each side's ``reg_max + 1`` logits are soft-maxed and the distance is ``Σ p_k · k``, so it lies in
    ``[0, reg_max]``.
    """
    bins = reg_max + 1
    d = np.asarray(dist, dtype=np.float64)
    if d.ndim != 2 or d.shape[1] != 4 * bins:
        raise ValueError(f"distribution shape {d.shape} does not match 4×{bins} bins")
    d = d.reshape(-1, 4, bins)
    d = d - d.max(axis=2, keepdims=True)
    p = np.exp(d)
    p /= p.sum(axis=2, keepdims=True)
    return p @ np.arange(bins, dtype=np.float64)


def decode_gfl(
    scores: Sequence[np.ndarray], dists: Sequence[np.ndarray], head: GFLHead, min_score: float
) -> Candidates:
    """Candidates of one image from per-stride ``scores [n_s, C]`` and ``dists [n_s, 4·(reg_max+1)]``.

    Every (cell, class) pair with ``score >= min_score`` becomes a candidate (GFL's multi-class
    post-processing), so a cell may propose e.g. both *cat* and *dog*; class-aware NMS sorts them out.
    Only the distributions of cells that pass are decoded.
    """
    if not (len(scores) == len(dists) == len(head.strides)):
        raise ValueError("one score and one distribution array per stride are needed")
    boxes, out_scores, out_classes = [], [], []
    for sc, dist, stride in zip(scores, dists, head.strides):
        cols, rows = head.grid(stride)
        sc = np.asarray(sc)
        if sc.shape[0] != cols * rows or np.asarray(dist).shape[0] != cols * rows:
            raise ValueError(f"stride {stride}: expected {cols * rows} cells, got {sc.shape[0]}")
        cells, cls = np.nonzero(sc >= min_score)
        if cells.size == 0:
            continue
        uniq, inverse = np.unique(cells, return_inverse=True)
        centres = cell_centres(cols, rows, stride, head.center_offset)[uniq]
        ltrb = distribution_distances(np.asarray(dist)[uniq], head.reg_max) * stride
        xyxy = np.concatenate([centres - ltrb[:, :2], centres + ltrb[:, 2:]], axis=1)
        boxes.append(xyxy[inverse])
        out_scores.append(sc[cells, cls])
        out_classes.append(cls)
    if not boxes:
        return Candidates.empty()
    return Candidates(
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(out_scores).astype(np.float32),
        np.concatenate(out_classes).astype(np.int64),
    )


def heatmap_peaks(heat: np.ndarray, kernel: int = 3) -> np.ndarray:
    """``heat [H, W, C]`` with every value that is not the maximum of its ``kernel × kernel`` neighbourhood
    (same class, 'SAME' padding) set to 0: CenterNet's NMS. Ties keep both, as TF's ``MaxPool`` + ``Equal``
    do."""
    h = np.asarray(heat, dtype=np.float32)
    r = kernel // 2
    padded = np.pad(h, ((r, r), (r, r), (0, 0)), constant_values=-np.inf)
    pooled = np.full_like(h, -np.inf)
    rows, cols = h.shape[:2]
    for dy in range(kernel):
        for dx in range(kernel):
            np.maximum(pooled, padded[dy:dy + rows, dx:dx + cols], out=pooled)
    return np.where(h == pooled, h, 0.0).astype(np.float32)


def decode_centernet(heat: np.ndarray, sides: np.ndarray, stride: int, min_score: float, top_k: int = 100,
                     kernel: int = 3) -> Candidates:
    """Candidates of one image from CenterNet's ``heat [H, W, C]`` (class heatmaps, sigmoid applied) and
    ``sides [H, W, 4]`` (distances l, t, r, b in input pixels).

    The peaks of the heatmap (:func:`heatmap_peaks`), best ``top_k`` over all (cell, class) pairs, and of
    those the ones scoring at least ``min_score``; the box of a peak at column ``x``, row ``y`` is
    ``(s·x − l, s·y − t, s·x + r, s·y + b)`` with ``s = stride`` (no half-cell offset: what the model's own
    TFJS graph computes, checked in ``models/centernet/README.md``).
    """
    heat = np.asarray(heat)
    sides = np.asarray(sides, dtype=np.float64)
    if heat.ndim != 3 or sides.shape != heat.shape[:2] + (4,):
        raise ValueError(f"heatmap {heat.shape} and sides {sides.shape} do not match ([H,W,C] and [H,W,4])")
    rows, cols, n_cls = heat.shape
    # only values above the floor can be kept, so the 3x3 test runs on those alone (a few hundred of the
    # 1.3 M heatmap values: 15 ms → well under 1 ms per frame); the top-k of the peaks above the floor is the
    # part above the floor of the top-k of all peaks, so this equals heatmap_peaks + top-k + threshold
    flat = heat.ravel()
    idx = np.flatnonzero(flat >= min_score)
    if idx.size:
        cell_i, cls_i = np.divmod(idx, n_cls)
        y_i, x_i = np.divmod(cell_i, cols)
        r = kernel // 2
        best = flat[idx].copy()
        for dy in range(-r, r + 1):
            for dx in range(-r, r + 1):
                # clamping at the edge repeats an in-bounds neighbour: the same as 'SAME' padding for a max
                yy, xx = np.clip(y_i + dy, 0, rows - 1), np.clip(x_i + dx, 0, cols - 1)
                np.maximum(best, heat[yy, xx, cls_i], out=best)
        idx = idx[flat[idx] == best]
    top = idx[np.argsort(-flat[idx], kind="stable")][:top_k]  # ties: the lower index first, as TF's TopKV2
    if top.size == 0:
        return Candidates.empty()
    cell, cls = np.divmod(top, n_cls)
    y, x = np.divmod(cell, cols)
    d = sides.reshape(-1, 4)[cell]
    cx, cy = x * float(stride), y * float(stride)
    boxes = np.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3]], axis=1)
    return Candidates(boxes.astype(np.float32), flat[top].astype(np.float32), cls.astype(np.int64))


def decode_yolo(out: np.ndarray, head: str, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image's raw YOLO output → (boxes ``[n,4]`` as given, scores ``[n]``, classes ``[n]``)."""
    if head == "yolov8":
        rows = out.T  # [4+C, B] -> [B, 4+C]
        cls = rows[:, 4:]
    elif head == "yolov5":
        rows = out
        cls = rows[:, 5:] * rows[:, 4:5]
    else:
        raise ValueError(f"unknown detector head {head!r}")
    if cls.shape[1] == 0:
        raise ValueError("detector output has no class columns")
    classes = cls.argmax(axis=1)
    scores = cls[np.arange(len(cls)), classes]
    ok = scores >= threshold
    return rows[ok, :4], scores[ok], classes[ok]
