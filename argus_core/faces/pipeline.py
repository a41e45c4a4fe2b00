"""The face pipeline as plain numpy + onnxruntime code, usable outside ops (galleries, CLI, tests).

    FaceBoxes (detection, uint8 RGB, longer side ≤ 1024, NMS in the graph, score ≥ 0.7)
      → BlazeFace keypoints on a square crop of 2× the box, resized to 256² (anchors decoded here)
      → similarity alignment (Umeyama least squares) of eyes, nose and mouth onto the ArcFace template ×2,
        warped to 224² with our own vectorised bilinear sampler (with a 2× mean pyramid against aliasing)
      → FaceRes: L2-normalised 1024-D descriptor (cosine similarity), P(male), age (softmax expectation).

BlazeFace gives six keypoints (right eye, left eye, nose tip, mouth centre, right and left ear tragion; "right"
is the subject's right, i.e. the image-left eye of a frontal face). The ArcFace template has two mouth
corners instead of a mouth centre, so alignment uses four points: both eyes, the nose tip, and the mouth
centre mapped to the midpoint of the template's mouth corners. When BlazeFace finds no face in the crop
(score below ``min_keypoint_score``) the points are estimated from the box and ``Face.keypoint_score``
says so (0.0 plus ``aligned_by="box"``).

Coordinates are continuous pixel coordinates: pixel (i, j) covers [j, j+1) × [i, i+1), its centre is at
(j + 0.5, i + 0.5). Boxes are ``x1, y1, x2, y2`` in the pixels of the image given to :meth:`detect`.

No OpenCV: resizing of whole images uses FFmpeg's swscale through PyAV (the same bilinear scaler the video
decoder uses for frame renditions), everything else is numpy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..media.renditions import FrameSpec
from ..runtime.manifest import MODELS_DIR, to_tensor
from ..runtime.session import Model
from .align import (ALIGN_DST, ALIGN_SIZE, DETECT_MAX_SIDE, Pyramid, as_rgb, fit_image, invert_affine, umeyama,
                    warp_affine)

DETECT_SPEC = FrameSpec(0, 0, "contain", DETECT_MAX_SIDE)
DEFAULT_MIN_SCORE = 0.7
DEFAULT_MIN_KEYPOINT_SCORE = 0.5
BLAZE_SIZE = 256
CROP_SCALE = 2.0  # BlazeFace sees a square of 2× the FaceBoxes box
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose", "mouth", "right_ear_tragion", "left_ear_tragion")



def _blaze_anchors() -> np.ndarray:
    """BlazeFace (back, 256²) anchor centres in input pixels: 16×16 cells × 2 then 8×8 cells × 6,
    cell-major (row, column, anchor) — MediaPipe's SSD anchor order."""
    out = []
    for stride, per in ((16, 2), (32, 6)):
        n = BLAZE_SIZE // stride
        ys, xs = np.mgrid[0:n, 0:n]
        c = np.stack([(xs.ravel() + 0.5) * stride, (ys.ravel() + 0.5) * stride], axis=1)
        out.append(np.repeat(c, per, axis=0))
    return np.concatenate(out).astype(np.float32)


@dataclass
class Face:
    """One detected face. ``box`` x1,y1,x2,y2 and ``keypoints`` (6×2) are in the pixels of the image that
    was analysed; ``embedding`` is the L2-normalised FaceRes descriptor (None until embedded)."""

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    keypoint_score: float = 0.0
    aligned_by: str = ""
    embedding: np.ndarray | None = None
    male: float | None = None
    age: float | None = None
    aligned: np.ndarray | None = field(default=None, repr=False)

    @property
    def gender(self) -> str | None:
        return None if self.male is None else ("male" if self.male >= 0.5 else "female")

    def pts(self, scale_x: float = 1.0, scale_y: float = 1.0) -> list[list[int]]:
        """The box's four corners (clockwise from top-left), scaled, as integer pixels."""
        x1, y1, x2, y2 = (float(v) for v in self.box)
        x1, x2 = x1 * scale_x, x2 * scale_x
        y1, y2 = y1 * scale_y, y2 * scale_y
        return [[round(x1), round(y1)], [round(x2), round(y1)], [round(x2), round(y2)], [round(x1), round(y2)]]


class FacePipeline:
    """Detection → keypoints → alignment → embedding. Thread-compatible, not thread-safe (one per worker).

    ``models_dir``: folder holding ``faceboxes/``, ``blazeface/``, ``faceres/`` (default: the shipped
    models, or ``$ARGUS_MODELS_DIR``). Each model is verified against its manifest's recorded outputs when
    loaded (``check=False`` skips that, for benchmarks).
    """

    def __init__(self, models_dir: str | Path | None = None, *, providers: list | None = None, threads: int = 1,
                 min_score: float | None = None, min_keypoint_score: float = DEFAULT_MIN_KEYPOINT_SCORE,
                 check: bool = True) -> None:
        root = Path(models_dir or os.environ.get("ARGUS_MODELS_DIR") or MODELS_DIR)
        self.detector = Model(root / "faceboxes", providers=providers, threads=threads, check=check)
        self.keypointer = Model(root / "blazeface", providers=providers, threads=threads, check=check)
        self.embedder = Model(root / "faceres", providers=providers, threads=threads, check=check)
        dparams = self.detector.manifest.params
        self.min_score = float(min_score if min_score is not None else dparams.get("min_score", DEFAULT_MIN_SCORE))
        self.min_keypoint_score = min_keypoint_score
        self._anchors = _blaze_anchors()
        kp = self.keypointer.manifest.params
        self._kp_scores = list(kp.get("score_outputs", ["Identity:0", "Identity_1:0"]))
        self._kp_boxes = list(kp.get("box_outputs", ["Identity_2:0", "Identity_3:0"]))
        self._kp_clip = float(kp.get("score_clip", 100.0))
        self._kp_iou = float(kp.get("nms_iou", 0.3))
        ep = self.embedder.manifest.params
        self._emb_names = [ep.get("embedding_output", "global_pooling/Mean"),
                           ep.get("gender_output", "gender_pred/Sigmoid:0"),
                           ep.get("age_output", "age_pred/Softmax:0")]
        self.same_face_cosine = float(ep.get("same_face_cosine", 0.6))

    # -- stages ----------------------------------------------------------------------------------------
    def detect(self, img: np.ndarray, min_score: float | None = None) -> list[Face]:
        """Faces in an RGB uint8 image (any size: shrunk to ≤ 1024 for the model, boxes in ``img`` pixels)."""
        small, scale = fit_image(img, DETECT_MAX_SIDE)
        h, w = small.shape[:2]
        scores, boxes = self.detector.run(small[None], ["scores", "boxes"])
        thr = self.min_score if min_score is None else min_score
        keep = scores[0] >= thr
        faces = []
        for (ymin, xmin, ymax, xmax), s in zip(boxes[0][keep], scores[0][keep]):
            box = np.array([xmin * w, ymin * h, xmax * w, ymax * h], np.float64) * scale
            faces.append(Face(box=box, score=float(s)))
        return faces

    def crop_transforms(self, faces: Sequence[Face]) -> np.ndarray:
        """Per face, the 2×3 map from BlazeFace input pixels (256²) to image pixels: a square of
        ``CROP_SCALE`` × the box's longer side centred on the box."""
        out = np.zeros((len(faces), 2, 3))
        for i, f in enumerate(faces):
            x1, y1, x2, y2 = f.box
            side = CROP_SCALE * max(x2 - x1, y2 - y1, 1.0)
            s = side / BLAZE_SIZE
            out[i] = [[s, 0.0, (x1 + x2) / 2 - side / 2], [0.0, s, (y1 + y2) / 2 - side / 2]]
        return out

    def keypoints(self, img: np.ndarray, faces: Sequence[Face], pyramid: Pyramid | None = None) -> None:
        """Fill ``keypoints``/``keypoint_score`` of each face (BlazeFace on its crop; batch of all faces)."""
        if not faces:
            return
        crops_to_img = self.crop_transforms(faces)
        crops = warp_affine(img, crops_to_img, BLAZE_SIZE, BLAZE_SIZE, pyramid=pyramid or Pyramid(img))
        tensor = to_tensor(np.clip(np.rint(crops), 0, 255).astype(np.uint8), self.keypointer.manifest.input)
        outs = self.keypointer.run(tensor, self._kp_scores + self._kp_boxes)
        logits = np.concatenate([outs[0], outs[1]], axis=1)[..., 0]  # (N, 896)
        regs = np.concatenate([outs[2], outs[3]], axis=1)  # (N, 896, 16)
        probs = 1.0 / (1.0 + np.exp(-np.clip(logits.astype(np.float64), -self._kp_clip, self._kp_clip)))
        for i, f in enumerate(faces):
            kps, score = self._decode_blaze(probs[i], regs[i])
            m = crops_to_img[i]
            f.keypoints = kps @ m[:, :2].T + m[:, 2]
            f.keypoint_score = score

    def _decode_blaze(self, probs: np.ndarray, regs: np.ndarray) -> tuple[np.ndarray, float]:
        """Keypoints (6×2, 256² pixels) of the best face in a crop: the top anchor blended (score-weighted)
        with the anchors overlapping it (MediaPipe's weighted NMS, one face)."""
        a = self._anchors
        best = int(np.argmax(probs))
        cx = a[:, 0] + regs[:, 0]
        cy = a[:, 1] + regs[:, 1]
        half_w, half_h = regs[:, 2] / 2, regs[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        b = boxes[best]
        iw = np.clip(np.minimum(boxes[:, 2], b[2]) - np.maximum(boxes[:, 0], b[0]), 0, None)
        ih = np.clip(np.minimum(boxes[:, 3], b[3]) - np.maximum(boxes[:, 1], b[1]), 0, None)
        inter = iw * ih
        area = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
        iou = inter / np.maximum(area + area[best] - inter, 1e-6)
        sel = (iou > self._kp_iou) & (probs >= min(self.min_keypoint_score, probs[best]))
        sel[best] = True
        wts = probs[sel] / probs[sel].sum()
        kps = regs[sel, 4:16].reshape(-1, 6, 2) + a[sel, None, :]
        return (kps * wts[:, None, None]).sum(0).astype(np.float64), float(probs[best])

    def align(self, img: np.ndarray, faces: Sequence[Face], pyramid: Pyramid | None = None) -> np.ndarray:
        """Aligned 224² crops (``[N,224,224,3]`` float32 0..255) of faces with keypoints (or box estimates)."""
        mats = np.zeros((len(faces), 2, 3))
        for i, f in enumerate(faces):
            if f.keypoints is not None and f.keypoint_score >= self.min_keypoint_score:
                src = f.keypoints[:4]
                f.aligned_by = "keypoints"
            else:
                src = self._box_points(f.box)
                f.aligned_by = "box"
            mats[i] = invert_affine(umeyama(src, ALIGN_DST))
        if not faces:
            return np.zeros((0, ALIGN_SIZE, ALIGN_SIZE, 3), np.float32)
        return warp_affine(img, mats, ALIGN_SIZE, ALIGN_SIZE, pyramid=pyramid or Pyramid(img))

    @staticmethod
    def _box_points(box: np.ndarray) -> np.ndarray:
        """Eyes, nose, mouth estimated from a FaceBoxes box (forehead to chin): fallback only."""
        x1, y1, x2, y2 = box
        w, h = x2 - x1, y2 - y1
        rel = np.array([[0.32, 0.40], [0.68, 0.40], [0.50, 0.58], [0.50, 0.76]])
        return np.column_stack([x1 + rel[:, 0] * w, y1 + rel[:, 1] * h])

    def embed(self, aligned: np.ndarray, batch: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """FaceRes on aligned crops ``[N,224,224,3]`` (0..255): (unit descriptors [N,1024] float32,
        P(male) [N], age [N])."""
        n = len(aligned)
        if n == 0:
            return np.zeros((0, 1024), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32)
        embs, males, ages = [], [], []
        years = np.arange(100, dtype=np.float32)
        for i in range(0, n, batch):
            x = np.ascontiguousarray(aligned[i : i + batch], dtype=np.float32)
            e, g, a = self.embedder.run(x, self._emb_names)
            e = np.asarray(e, np.float32).reshape(len(x), -1)
            embs.append(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12))
            males.append(np.asarray(g, np.float32).reshape(-1))
            ages.append(np.asarray(a, np.float32).reshape(len(x), -1) @ years)
        return np.concatenate(embs), np.concatenate(males), np.concatenate(ages)

    # -- whole pipeline ------------------------------------------------------------------------------
    def analyze(self, img: np.ndarray, *, min_score: float | None = None, embed: bool = True,
                keep_aligned: bool = False) -> list[Face]:
        """Every face in an RGB uint8 image, with keypoints and (``embed``) descriptor, gender and age."""
        return self.analyze_many([img], min_score=min_score, embed=embed, keep_aligned=keep_aligned)[0]

    def analyze_many(self, images: Sequence[np.ndarray], *, min_score: float | None = None, embed: bool = True,
                     keep_aligned: bool = False) -> list[list[Face]]:
        """:meth:`analyze` on several images; FaceRes runs once on the faces of all of them."""
        per_image: list[list[Face]] = []
        crops: list[np.ndarray] = []
        for img in images:
            img = as_rgb(img)
            faces = self.detect(img, min_score)
            if faces:
                pyr = Pyramid(img)
                self.keypoints(img, faces, pyr)
                if embed:
                    crops.append(self.align(img, faces, pyr))
            per_image.append(faces)
        if embed and crops:
            aligned = np.concatenate(crops)
            embs, males, ages = self.embed(aligned)
            k = 0
            for faces in per_image:
                for f in faces:
                    f.embedding, f.male, f.age = embs[k], float(males[k]), float(ages[k])
                    if keep_aligned:
                        f.aligned = aligned[k]
                    k += 1
        return per_image


def face_dict(face: Face) -> dict[str, Any]:
    """A JSON-ready summary of a face (box, score, keypoints, gender, age)."""
    out: dict[str, Any] = {"box": [round(float(v), 1) for v in face.box], "score": round(face.score, 6)}
    if face.keypoints is not None:
        out["keypoints"] = {n: [round(float(x), 1), round(float(y), 1)]
                            for n, (x, y) in zip(KEYPOINT_NAMES, face.keypoints)}
        out["keypoint_score"] = round(face.keypoint_score, 6)
    if face.male is not None:
        out["gender"] = face.gender
        out["age"] = round(float(face.age), 1)
    return out
