"""Frame renditions: what an op asks the decoder for (size + resize rule, computed per source size), the
:class:`Frame` an op sees, and the :class:`Converter` that writes each rendition straight into a ring slot.

The decoder converts each sampled frame once per distinct rendition (swscale, straight to RGB at the model
size), so no full-resolution RGB frame is ever made when a 224² model is all that runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import av
import msgspec
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

# Renditions with 'cover' keep the aspect ratio and fill the box; cap how far they may overflow it so a
# slot's size stays bounded for extreme aspect ratios (beyond it the frame is squeezed a little).
COVER_ASPECT_CAP = 4.0


class FrameSpec(msgspec.Struct, frozen=True):
    """A rendition: ``stretch`` to exactly width×height; ``contain``/``letterbox`` fit inside the box with
    the aspect kept; ``cover`` fill the box with the aspect kept; width=height=0 keeps the source size,
    shrunk so the longer side is at most ``max_side``."""

    width: int = 0
    height: int = 0
    resize: Literal["stretch", "contain", "cover", "letterbox"] = "stretch"
    max_side: int = 0

    def size_for(self, src_w: int, src_h: int) -> tuple[int, int]:
        """(width, height) of this rendition for a source of the given size."""
        sw, sh = max(src_w, 1), max(src_h, 1)
        if not (self.width and self.height):
            side = self.max_side or max(sw, sh)
            s = min(1.0, side / max(sw, sh))
            return max(1, round(sw * s)), max(1, round(sh * s))
        if self.resize == "stretch":
            return self.width, self.height
        if self.resize == "cover":
            s = max(self.width / sw, self.height / sh)
            w, h = round(sw * s), round(sh * s)
            return (min(max(w, self.width), int(self.width * COVER_ASPECT_CAP)),
                    min(max(h, self.height), int(self.height * COVER_ASPECT_CAP)))
        s = min(self.width / sw, self.height / sh)
        return max(1, round(sw * s)), max(1, round(sh * s))

    def max_bytes(self) -> int:
        """Upper bound of one RGB rendition's bytes, whatever the source."""
        if not (self.width and self.height):
            side = self.max_side or 1920
            return side * side * 3
        if self.resize == "cover":
            return int(self.width * self.height * COVER_ASPECT_CAP * 3)
        return self.width * self.height * 3


def unique_specs(specs: Iterable[FrameSpec]) -> tuple[FrameSpec, ...]:
    """Distinct renditions in a stable order (so view indexes agree across processes)."""
    return tuple(sorted(set(specs), key=lambda s: (s.width, s.height, s.resize, s.max_side)))


def slot_bytes_for(specs: Sequence[FrameSpec]) -> int:
    return sum(_round64(s.max_bytes()) for s in specs)


def _round64(n: int) -> int:
    return (n + 63) // 64 * 64


@dataclass(slots=True)
class Frame:
    """One sampled frame as an op sees it: its offset, the source size and a view per rendition
    (numpy views into the ring slot; valid only until the op returns)."""

    offset: int
    src_w: int
    src_h: int
    views: dict[FrameSpec, np.ndarray]

    def view(self, spec: FrameSpec) -> np.ndarray:
        return self.views[spec]


def centre_crop(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """A view of the centre width×height of an (h, w, c) image (no copy)."""
    h, w = img.shape[:2]
    y = max(0, (h - height) // 2)
    x = max(0, (w - width) // 2)
    return img[y : y + height, x : x + width]


def letterbox(img: np.ndarray, width: int, height: int, fill: int = 0) -> tuple[np.ndarray, int, int]:
    """Pad an image to width×height (top-left placed); returns (padded, x_pad, y_pad)."""
    h, w = img.shape[:2]
    out = np.full((height, width, img.shape[2]), fill, dtype=img.dtype)
    out[:h, :w] = img[:height, :width]
    return out, 0, 0


class Converter:
    """Turns a decoded frame into RGB renditions written straight into destination arrays.

    One swscale context per rendition size is reused (PyAV's VideoReformatter caches it), which is what
    makes converting straight to the model size cheap."""

    def __init__(self, specs: Sequence[FrameSpec], src_w: int, src_h: int) -> None:
        self.specs = tuple(specs)
        self.sizes = [spec.size_for(src_w, src_h) for spec in self.specs]
        self._reformatters = [VideoReformatter() for _ in self.specs]

    def shapes(self) -> list[tuple[int, int, int]]:
        return [(h, w, 3) for (w, h) in self.sizes]

    def convert_into(self, frame: av.VideoFrame, outs: Sequence[np.ndarray]) -> None:
        for ref, (w, h), out in zip(self._reformatters, self.sizes, outs):
            rgb = ref.reformat(frame, width=w, height=h, format="rgb24", interpolation=Interpolation.BILINEAR)
            np.copyto(out, rgb.to_ndarray())

    def convert(self, frame: av.VideoFrame) -> list[np.ndarray]:
        outs = [np.empty(shape, np.uint8) for shape in self.shapes()]
        self.convert_into(frame, outs)
        return outs
