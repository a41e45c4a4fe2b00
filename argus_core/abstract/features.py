"""Per-frame features of a small RGB frame (e.g. 64×36 uint8) for shot detection and scene grouping.

Pure numpy. A frame becomes: its luma/chroma planes at block resolution (mean of 4×4 blocks: motion of a few
pixels barely changes them), a YUV histogram (16 bins per channel, each normalised), its mean luma and the
fraction of near-black pixels. :func:`distance` mixes a histogram distance (insensitive to motion) with a block
difference (sensitive to a change of layout the histogram cannot see), both in [0, 1].
"""

from __future__ import annotations

import numpy as np

HIST_BINS = 16
_Y = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_U = np.array([-0.169, -0.331, 0.5], dtype=np.float32)
_V = np.array([0.5, -0.419, -0.081], dtype=np.float32)
_MIX = np.stack([_Y, _U, _V], axis=1)   # rgb @ _MIX -> yuv (u, v centred on 0)


class Frame:
    """Features of one sampled frame (plain attributes; not a Struct: it never crosses a boundary)."""

    __slots__ = ("blocks", "hist", "luma", "dark", "small")

    def __init__(self, blocks: np.ndarray, hist: np.ndarray, luma: float, dark: float, small: np.ndarray):
        self.blocks = blocks   # [h/4, w/4, 3] float32 YUV block means, 0..255 (u, v offset by 128)
        self.hist = hist       # [3 * HIST_BINS] float32, each channel sums to 1
        self.luma = luma       # mean luma 0..255
        self.dark = dark       # fraction of pixels with luma <= the black threshold
        self.small = small     # [h/2, w/2, 3] float32 YUV (transition models need more detail than blocks)


def yuv(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 ``[h, w, 3]`` → float32 YUV with u, v offset by 128 (BT.601 weights)."""
    out = rgb.astype(np.float32) @ _MIX
    out[..., 1:] += 128.0
    return out


def _pool(img: np.ndarray, k: int) -> np.ndarray:
    h, w = img.shape[0] // k * k, img.shape[1] // k * k
    x = img[:h, :w]
    return x.reshape(h // k, k, w // k, k, -1).mean(axis=(1, 3))


def frame_features(rgb: np.ndarray, black_luma: float = 32.0) -> Frame:
    """Features of an RGB uint8 frame ``[h, w, 3]``; ``black_luma`` (0..255) is the near-black threshold."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB frame [h, w, 3], got shape {rgb.shape}")
    img = yuv(rgb)
    hist = np.empty(3 * HIST_BINS, dtype=np.float32)
    n = img.shape[0] * img.shape[1]
    for c in range(3):
        idx = np.clip((img[..., c] * (HIST_BINS / 256.0)).astype(np.int32), 0, HIST_BINS - 1)
        hist[c * HIST_BINS:(c + 1) * HIST_BINS] = np.bincount(idx.ravel(), minlength=HIST_BINS) / n
    y = img[..., 0]
    return Frame(_pool(img, 4), hist, float(y.mean()), float((y <= black_luma).mean()), _pool(img, 2))


def hist_distance(a: Frame, b: Frame) -> float:
    """Half the L1 distance of the YUV histograms averaged over channels: 0 same, 1 disjoint."""
    return float(np.abs(a.hist - b.hist).sum() / 6.0)


def block_distance(a: Frame, b: Frame) -> float:
    """Mean absolute block difference scaled so that 64 grey levels (a quarter of the range) reads 1."""
    return float(min(1.0, np.abs(a.blocks - b.blocks).mean() / 64.0))


def distance(a: Frame, b: Frame) -> float:
    """How different two frames look, 0..1: the mean of :func:`hist_distance` and :func:`block_distance`."""
    return 0.5 * (hist_distance(a, b) + block_distance(a, b))
