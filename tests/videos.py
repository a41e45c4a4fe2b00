"""Real test videos made with PyAV/FFmpeg: frame-numbered cards and a slideshow of real photos."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

BITS = 12


def index_card(i: int, w: int, h: int) -> np.ndarray:
    """A frame showing its own index as 12 black/white blocks (survives H.264 compression)."""
    img = np.full((h, w, 3), 128, np.uint8)
    bw = w // BITS
    for b in range(BITS):
        if (i >> b) & 1:
            img[h // 4 : 3 * h // 4, b * bw + 2 : (b + 1) * bw - 2] = 255
        else:
            img[h // 4 : 3 * h // 4, b * bw + 2 : (b + 1) * bw - 2] = 0
    return img


def read_index(img: np.ndarray) -> int:
    """Inverse of :func:`index_card` on a decoded (possibly resized) RGB frame."""
    h, w = img.shape[:2]
    bw = w / BITS
    value = 0
    for b in range(BITS):
        x0, x1 = int(b * bw + bw * 0.3), int((b + 1) * bw - bw * 0.3)
        block = img[int(h * 0.35) : int(h * 0.65), x0:x1]
        if block.mean() > 128:
            value |= 1 << b
    return value


def encode(path: Path, frames, fps: int, w: int, h: int, gop: int, bframes: int = 2,
           codec: str = "h264") -> Path:
    path = Path(path)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        if codec == "h264":
            s.codec_context.options = {"g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                                       "bf": str(bframes), "preset": "ultrafast" if bframes == 0 else "veryfast"}
            if bframes:
                # x264 would pick no B-frames for these synthetic cards; force them, so that tests see
                # decode order ≠ display order (and, with 3, its B-pyramid of reference B-frames)
                s.codec_context.options["x264-params"] = "b-adapt=0"
        else:
            s.codec_context.gop_size = gop
        for i, img in enumerate(frames):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            if f.width != w or f.height != h:
                f = f.reformat(w, h)
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def numbered_video(path: Path, seconds: float, fps: int = 25, gop: int = 25, w: int = 320, h: int = 180,
                   bframes: int = 2) -> Path:
    n = int(round(seconds * fps))
    return encode(path, (index_card(i, w, h) for i in range(n)), fps, w, h, gop, bframes)


def photos() -> list[np.ndarray]:
    from skimage import data

    cam = data.camera()
    return [data.astronaut(), data.chelsea(), data.coffee(), np.stack([cam] * 3, -1), data.rocket()]


def photo_video(path: Path, per_photo: float = 3.0, fps: int = 25, gop: int = 25, w: int = 640,
                h: int = 360, order: list[int] | None = None) -> Path:
    """A slideshow of real photos, each shown ``per_photo`` seconds (changes exactly at k·per_photo)."""
    imgs = photos()
    order = order if order is not None else list(range(len(imgs)))
    per = int(round(per_photo * fps))
    frames = (imgs[order[i // per]] for i in range(per * len(order)))
    return encode(path, frames, fps, w, h, gop)


def keyframe_offsets(path: Path) -> list[int]:
    """Keyframe pts in ms from the start, read by demuxing (independently of the sampler)."""
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        start = st.start_time or 0
        out = [int(round(float((p.pts - start) * st.time_base) * 1000))
               for p in c.demux(st) if p.is_keyframe and p.pts is not None]
    return sorted(out)
