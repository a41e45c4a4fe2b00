"""Box post-processing shared by every detector (pure numpy): IoU, the one NMS, frame mapping, corners.

Table-tested without a model (tests/test_detection_post.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


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


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, classes: np.ndarray | None = None,
        max_keep: int = 0) -> np.ndarray:
    """Greedy NMS: indices of the kept boxes, best score first. A box is suppressed when its IoU with a
    kept, better box is *greater* than ``iou_threshold``. Equal scores keep input order (stable).

    With ``classes``, boxes of different classes never suppress each other (class-aware): each class is
    shifted into a region of its own, so boxes of two classes cannot overlap."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if len(b) == 0:
        return np.zeros(0, dtype=np.int64)
    if classes is not None:
        b = b + (np.asarray(classes, dtype=np.float64) * (np.abs(b).max() + 1.0))[:, None]
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if max_keep and len(keep) >= max_keep:
            break
        rest = order[1:]
        order = rest[iou_one_to_many(b[i], b[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def class_aware_nms(cands: Candidates, iou_threshold: float, max_keep: int = 100) -> Candidates:
    """NMS within each class only (a person box never suppresses a cup box); best score first, at most
    ``max_keep`` in total."""
    if len(cands) == 0:
        return cands
    return cands.select(nms(cands.boxes, cands.scores, iou_threshold, cands.classes, max_keep))


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
