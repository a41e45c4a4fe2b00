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

from .media.renditions import FrameSpec
from .models import (MODELS_DIR, PACKAGE_PREFIX, Manifest, check_file_hash, load_manifest, model_path, open_session,
                     to_tensor, verify)

#: the ArcFace 5-point template (112² crop): image-left eye, image-right eye, nose tip, mouth corners
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ALIGN_SIZE = 224  # FaceRes input: the template ×2
#: alignment targets (224² pixels) for BlazeFace's eyes, nose, mouth centre
ALIGN_DST = np.vstack([ARCFACE_112[:3], ARCFACE_112[3:].mean(axis=0, keepdims=True)]) * (ALIGN_SIZE / 112.0)

DETECT_MAX_SIDE = 1024
DETECT_SPEC = FrameSpec(0, 0, "contain", DETECT_MAX_SIDE)
DEFAULT_MIN_SCORE = 0.7
DEFAULT_MIN_KEYPOINT_SCORE = 0.5
BLAZE_SIZE = 256
CROP_SCALE = 2.0  # BlazeFace sees a square of 2× the FaceBoxes box
KEYPOINT_NAMES = ("right_eye", "left_eye", "nose", "mouth", "right_ear_tragion", "left_ear_tragion")


# -- image helpers ------------------------------------------------------------------------------------
def fit_image(img: np.ndarray, max_side: int = DETECT_MAX_SIDE) -> tuple[np.ndarray, float]:
    """Shrink an RGB uint8 image so its longer side is ≤ ``max_side`` (aspect kept, swscale bilinear, the
    decoder's scaler). Returns ``(image, scale)`` with ``scale`` = source pixels per returned pixel."""
    img = as_rgb(img)
    h, w = img.shape[:2]
    nw, nh = FrameSpec(0, 0, "contain", max_side).size_for(w, h)
    if (nw, nh) == (w, h):
        return img, 1.0
    import av
    from av.video.reformatter import Interpolation

    frame = av.VideoFrame.from_ndarray(img, format="rgb24")
    out = frame.reformat(width=nw, height=nh, format="rgb24", interpolation=Interpolation.BILINEAR)
    return out.to_ndarray(), w / nw


def as_rgb(img: np.ndarray) -> np.ndarray:
    """An ``(H,W,3)`` uint8 RGB array from RGB, RGBA or grey input."""
    img = np.asarray(img)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4) or img.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got {img.dtype} {img.shape}")
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[..., :3])


def _half(img: np.ndarray) -> np.ndarray:
    """2× mean downsampling (float32), odd last row/column dropped."""
    h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
    x = img[:h, :w]
    acc = np.uint16 if x.dtype == np.uint8 else np.float32
    total = x[0::2, 0::2].astype(acc)
    total += x[1::2, 0::2]
    total += x[0::2, 1::2]
    total += x[1::2, 1::2]
    return total.astype(np.float32) * np.float32(0.25)


class _Pyramid:
    """Lazily built 2× mean pyramid of one image (level k is 2**k times smaller)."""

    def __init__(self, img: np.ndarray) -> None:
        self.levels: list[np.ndarray] = [img]

    def level(self, k: int) -> tuple[np.ndarray, int]:
        """The image 2**k times smaller (or the smallest there is) and its actual level."""
        while len(self.levels) <= k and min(self.levels[-1].shape[:2]) >= 8:
            self.levels.append(_half(self.levels[-1]))
        k = min(k, len(self.levels) - 1)
        return self.levels[k], k


def warp_affine(img: np.ndarray, inv: np.ndarray, width: int, height: int, fill: float = 0.0,
                pyramid: _Pyramid | None = None) -> np.ndarray:
    """Bilinear warp of an ``(H,W,C)`` image to ``height×width``.

    ``inv`` is a 2×3 matrix or a stack ``(N,2,3)`` mapping *output* coordinates to *source* coordinates
    (continuous pixel coordinates, see the module doc). Samples outside the source blend with ``fill``.
    When the warp shrinks by 2× or more, a mean pyramid level is sampled instead (no aliasing).
    Returns float32 ``(height,width,C)`` or ``(N,height,width,C)``.
    """
    inv = np.asarray(inv, dtype=np.float64)
    single = inv.ndim == 2
    invs = inv[None] if single else inv
    pyr = pyramid or _Pyramid(img)
    out = np.empty((len(invs), height, width, img.shape[2]), np.float32)
    ys, xs = np.mgrid[0:height, 0:width]
    grid = np.stack([xs.ravel() + 0.5, ys.ravel() + 0.5, np.ones(xs.size)], axis=0).astype(np.float32)
    for n, m in enumerate(invs):
        # source pixels per output pixel: the larger singular value of the linear part
        shrink = float(np.linalg.svd(m[:, :2], compute_uv=False)[0])
        k = int(np.floor(np.log2(shrink))) if shrink >= 2.0 else 0
        src, k = pyr.level(k)
        pts = (m / (2.0 ** k)).astype(np.float32) @ grid  # (2, P) in the level's coordinates
        out[n] = _bilinear(src, pts[0] - 0.5, pts[1] - 0.5, fill).reshape(height, width, -1)
    return out[0] if single else out


def _bilinear(src: np.ndarray, x: np.ndarray, y: np.ndarray, fill: float) -> np.ndarray:
    """Sample ``src`` (H,W,C) at index-space positions x, y (pixel centres at integers); neighbours outside
    the image weigh as ``fill``."""
    h, w, c = src.shape
    flat = src.reshape(h * w, c)
    xf = np.floor(x)
    yf = np.floor(y)
    fx = (x - xf).astype(np.float32)
    fy = (y - yf).astype(np.float32)
    x0 = xf.astype(np.int32)
    y0 = yf.astype(np.int32)
    x1, y1 = x0 + 1, y0 + 1
    wx0 = (1.0 - fx) * ((x0 >= 0) & (x0 < w))
    wx1 = fx * ((x1 >= 0) & (x1 < w))
    wy0 = (1.0 - fy) * ((y0 >= 0) & (y0 < h))
    wy1 = fy * ((y1 >= 0) & (y1 < h))
    cx0, cx1 = np.clip(x0, 0, w - 1), np.clip(x1, 0, w - 1)
    r0, r1 = np.clip(y0, 0, h - 1) * w, np.clip(y1, 0, h - 1) * w
    w00, w01, w10, w11 = wy0 * wx0, wy0 * wx1, wy1 * wx0, wy1 * wx1
    # np.take is several times faster than fancy indexing for row gathers
    out = np.take(flat, r0 + cx0, axis=0) * w00[:, None]
    out += np.take(flat, r0 + cx1, axis=0) * w01[:, None]
    out += np.take(flat, r1 + cx0, axis=0) * w10[:, None]
    out += np.take(flat, r1 + cx1, axis=0) * w11[:, None]
    if fill:
        out += np.float32(fill) * (1.0 - (w00 + w01 + w10 + w11))[:, None]
    return out


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (rotation, uniform scale, translation) taking ``src`` points
    onto ``dst`` points (Umeyama 1991). Returns the 2×3 matrix ``A`` with ``dst ≈ A @ [x, y, 1]``."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    n = len(src)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / n
    u, sig, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rot = u @ sign @ vt
    var_s = (s ** 2).sum() / n
    scale = float(np.trace(np.diag(sig) @ sign) / var_s) if var_s > 0 else 1.0
    t = mu_d - scale * rot @ mu_s
    return np.hstack([scale * rot, t[:, None]])


def invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


# -- models -------------------------------------------------------------------------------------------
class _Net:
    """One verified ONNX model (kept free of ``argus_core.ops`` so this module imports standalone)."""

    def __init__(self, folder: Path, providers: list | None, threads: int, check: bool = True) -> None:
        self.manifest: Manifest = load_manifest(folder)
        path = model_path(folder, self.manifest)
        if self.manifest.file.startswith(PACKAGE_PREFIX):
            check_file_hash(path, self.manifest.sha256, self.manifest.name)
        self.session = open_session(path, providers, threads)
        if check:
            verify(folder, self.manifest, self.session)
        self.input_name = self.manifest.input.name
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, tensor: np.ndarray, names: Sequence[str] | None = None) -> list[np.ndarray]:
        return self.session.run(list(names or self.outputs), {self.input_name: tensor})


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
        self.detector = _Net(root / "faceboxes", providers, threads, check)
        self.keypointer = _Net(root / "blazeface", providers, threads, check)
        self.embedder = _Net(root / "faceres", providers, threads, check)
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

    def keypoints(self, img: np.ndarray, faces: Sequence[Face], pyramid: _Pyramid | None = None) -> None:
        """Fill ``keypoints``/``keypoint_score`` of each face (BlazeFace on its crop; batch of all faces)."""
        if not faces:
            return
        crops_to_img = self.crop_transforms(faces)
        crops = warp_affine(img, crops_to_img, BLAZE_SIZE, BLAZE_SIZE, pyramid=pyramid or _Pyramid(img))
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

    def align(self, img: np.ndarray, faces: Sequence[Face], pyramid: _Pyramid | None = None) -> np.ndarray:
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
        return warp_affine(img, mats, ALIGN_SIZE, ALIGN_SIZE, pyramid=pyramid or _Pyramid(img))

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
                pyr = _Pyramid(img)
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
