"""Image geometry for faces in numpy (no OpenCV): fitting an image for detection, a 2× mean pyramid, the
similarity transform onto the ArcFace template (Umeyama least squares) and a vectorised bilinear warp.

Coordinates are continuous pixel coordinates: pixel (i, j) covers [j, j+1) × [i, i+1), its centre is at
(j + 0.5, i + 0.5). Whole-image resizing uses FFmpeg's swscale through PyAV.
"""

from __future__ import annotations

import numpy as np

from ..media.renditions import FrameSpec

#: the ArcFace 5-point template (112² crop): image-left eye, image-right eye, nose tip, mouth corners
ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ALIGN_SIZE = 224  # FaceRes input: the template ×2
#: alignment targets (224² pixels) for BlazeFace's eyes, nose, mouth centre
ALIGN_DST = np.vstack([ARCFACE_112[:3], ARCFACE_112[3:].mean(axis=0, keepdims=True)]) * (ALIGN_SIZE / 112.0)

DETECT_MAX_SIDE = 1024


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


class Pyramid:
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
                pyramid: Pyramid | None = None) -> np.ndarray:
    """Bilinear warp of an ``(H,W,C)`` image to ``height×width``.

    ``inv`` is a 2×3 matrix or a stack ``(N,2,3)`` mapping *output* coordinates to *source* coordinates
    (continuous pixel coordinates, see the module doc). Samples outside the source blend with ``fill``.
    When the warp shrinks by 2× or more, a mean pyramid level is sampled instead (no aliasing).
    Returns float32 ``(height,width,C)`` or ``(N,height,width,C)``.
    """
    inv = np.asarray(inv, dtype=np.float64)
    single = inv.ndim == 2
    invs = inv[None] if single else inv
    pyr = pyramid or Pyramid(img)
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
