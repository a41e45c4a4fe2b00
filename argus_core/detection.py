"""Detector post-processing in pure numpy: NanoDet GFL decoding, class-aware NMS, boxes in frame pixels.

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


@dataclass(frozen=True)
class Candidates:
    """Scored boxes before NMS: ``boxes [n,4]`` x1,y1,x2,y2 (model-input pixels), ``scores [n]``,
    ``classes [n]``. One cell may appear once per class above the threshold."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray

    @staticmethod
    def empty() -> "Candidates":
        return Candidates(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    def select(self, mask: np.ndarray) -> "Candidates":
        return Candidates(self.boxes[mask], self.scores[mask], self.classes[mask])


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


def iou_one_to_many(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1,y1,x2,y2 box with each of ``boxes [n,4]`` (continuous coordinates; empty → 0)."""
    box = np.asarray(box, dtype=np.float64)
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = max(box[2] - box[0], 0.0) * max(box[3] - box[1], 0.0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int = 0) -> np.ndarray:
    """Greedy NMS: indices of the kept boxes, best score first. A box is suppressed when its IoU with a
    kept, better box is *greater* than ``iou_threshold``. Equal scores keep input order (stable)."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if max_keep and len(keep) >= max_keep:
            break
        rest = order[1:]
        order = rest[iou_one_to_many(boxes[i], boxes[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_aware_nms(cands: Candidates, iou_threshold: float, max_keep: int = 100) -> Candidates:
    """NMS within each class only (a person box never suppresses a cup box); best score first, at most
    ``max_keep`` in total."""
    if len(cands) == 0:
        return cands
    kept = []
    for c in np.unique(cands.classes):
        idx = np.flatnonzero(cands.classes == c)
        kept.append(idx[nms(cands.boxes[idx], cands.scores[idx], iou_threshold)])
    keep = np.concatenate(kept)
    keep = keep[np.argsort(-cands.scores[keep].astype(np.float64), kind="stable")]
    if max_keep:
        keep = keep[:max_keep]
    return cands.select(keep)


def to_frame(boxes: np.ndarray, scale_x: float, scale_y: float, frame_w: int, frame_h: int) -> np.ndarray:
    """Boxes from model-input pixels to frame pixels (``x·scale_x``, ``y·scale_y``), clipped to the frame
    (continuous coordinates, ``0 ≤ x ≤ frame_w``)."""
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * np.array([scale_x, scale_y, scale_x, scale_y])
    out[:, 0::2] = np.clip(out[:, 0::2], 0, frame_w)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, frame_h)
    return out


def corner_points(box: Sequence[float]) -> list[list[int]]:
    """``[[x1,y1],[x2,y1],[x2,y2],[x1,y2]]`` (clockwise from top-left, rounded to pixels): the ``pts``
    of CONTRACT §3."""
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]]
