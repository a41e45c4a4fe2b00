"""Frame renditions: what an op asks the decoder for (size + resize rule, computed per source size), the
:class:`Frame` an op sees, and the :class:`Converter` that writes each rendition straight into a ring slot.

The decoder converts each sampled frame once per distinct rendition (swscale, straight to RGB at the model
size), so no full-resolution RGB frame is ever made when a 224² model is all that runs.

Orientation (issue 9): a phone clip stores its pixels sideways and says how to show them in a display
matrix (``rotate=90`` side data). Renditions are of the *displayed* picture: swscale scales in the stored
orientation to the transposed size, then a quarter turn of the small RGB array puts it upright, so models
see people standing and ``pts`` boxes are in displayed pixels. The turn is the one FFmpeg's own autorotate
applies (``np.rot90(stored, rotation / 90)``, counter-clockwise, checked against the ``ffmpeg`` CLI in
``tests/test_orientation.py``).
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
    #: the neighbour frames present (before, after), for an op that averages them (pulp; ``Sides``)
    sides: tuple[dict[FrameSpec, np.ndarray], ...] = ()

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


def quarter_turns(rotation: float) -> int:
    """Counter-clockwise quarter turns (0–3) that show a frame upright, from its display-matrix rotation
    (PyAV's ``VideoFrame.rotation``: degrees counter-clockwise; odd angles snap to the nearest quarter)."""
    return int(round((rotation or 0) / 90.0)) % 4


def displayed_size(width: int, height: int, rotation: float) -> tuple[int, int]:
    """(width, height) of a stored ``width``×``height`` frame as shown."""
    return (height, width) if quarter_turns(rotation) % 2 else (width, height)


def upright(frame: av.VideoFrame) -> av.VideoFrame:
    """The frame as shown (a full-size RGB copy when it is stored turned; the frame itself otherwise)."""
    turns = quarter_turns(frame.rotation)
    if not turns:
        return frame
    out = av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(frame.to_ndarray(format="rgb24"), turns)),
                                     format="rgb24")
    out.pts, out.time_base = frame.pts, frame.time_base
    return out


class Converter:
    """Turns a decoded frame into RGB renditions of its displayed picture, written straight into destination
    arrays. ``src_w``/``src_h`` are the *stored* size; :attr:`display` is the size as shown.

    One swscale context per rendition size is reused (PyAV's VideoReformatter caches it), which is what
    makes converting straight to the model size cheap."""

    def __init__(self, specs: Sequence[FrameSpec], src_w: int, src_h: int, rotation: float = 0) -> None:
        self.specs = tuple(specs)
        self.stored = (src_w, src_h)
        self.turns = quarter_turns(rotation)
        self.display = displayed_size(src_w, src_h, rotation)
        self.sizes = [spec.size_for(*self.display) for spec in self.specs]
        self._reformatters = [VideoReformatter() for _ in self.specs]

    def follow(self, frame: av.VideoFrame) -> "Converter":
        """This converter, or a new one when ``frame`` has another stored size or rotation (a reconnect, a
        file whose first frame carries the display matrix the stream did not announce)."""
        if (frame.width, frame.height) == self.stored and quarter_turns(frame.rotation) == self.turns:
            return self
        return Converter(self.specs, frame.width, frame.height, frame.rotation)

    def shapes(self) -> list[tuple[int, int, int]]:
        return [(h, w, 3) for (w, h) in self.sizes]

    def convert_into(self, frame: av.VideoFrame, outs: Sequence[np.ndarray]) -> None:
        for ref, (w, h), out in zip(self._reformatters, self.sizes, outs):
            sw, sh = (h, w) if self.turns % 2 else (w, h)  # scale in the stored orientation, then turn
            rgb = ref.reformat(frame, width=sw, height=sh, format="rgb24",
                               interpolation=Interpolation.BILINEAR).to_ndarray()
            np.copyto(out, np.rot90(rgb, self.turns) if self.turns else rgb)

    def convert(self, frame: av.VideoFrame) -> list[np.ndarray]:
        outs = [np.empty(shape, np.uint8) for shape in self.shapes()]
        self.convert_into(frame, outs)
        return outs
