"""Benchmark videos, generated with PyAV from real photos and cached outside git.

Content: scikit-image's bundled photos (astronaut, coffee, chelsea, rocket, hubble, retina, …), one scene
every 4 s, each panned and zoomed continuously, so the encoder has real motion and texture to code (not
flat colour, not a static picture). H.264 (libx264), yuv420p, 25 fps, fixed GOP (``scenecut=0``, so
keyframes fall exactly every ``gop`` frames), one slice per frame (frame-threaded encoding, like the
ffmpeg CLI's default output), MP4.

The cache lives in ``$ARGUS_BENCH_CACHE`` or ``~/.cache/argus-bench`` (never in the repository). File names
carry every generation parameter plus ``GEN_VERSION``, so a change of recipe makes new files.

Long videos (the 30-minute RSS file) are made by remuxing N copies of the 1-minute file with shifted
timestamps: identical content and resolution, no re-encoding (seconds instead of minutes). With GOP 250 and
25 fps a minute is exactly six closed GOPs, so every copy starts on a keyframe.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from pathlib import Path

import av
import numpy as np

GEN_VERSION = 2  # 2: one slice per frame (frame-threaded x264, as the ffmpeg CLI makes)
FPS = 25
SCENE_S = 4.0

SIZES = {"360p": (640, 360), "720p": (1280, 720), "1080p": (1920, 1080)}


def cache_dir() -> Path:
    d = Path(os.environ.get("ARGUS_BENCH_CACHE") or Path.home() / ".cache" / "argus-bench")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _photos() -> list[np.ndarray]:
    import skimage.data as data

    out = []
    for name in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
                 "retina", "camera", "brick", "grass", "gravel", "moon"):
        try:
            img = getattr(data, name)()
        except Exception:  # a photo that needs a download: skip it
            continue
        if img.ndim == 2:
            img = np.stack([img] * 3, axis=-1)
        out.append(np.ascontiguousarray(img[..., :3].astype(np.uint8)))
    if not out:
        raise RuntimeError("no scikit-image photo available")
    return out


def _canvas(photo: np.ndarray, w: int, h: int, over: float = 1.6) -> np.ndarray:
    """The photo scaled (aspect kept, filling) to ``over`` × the output size, as RGB."""
    ph, pw = photo.shape[:2]
    s = max(w * over / pw, h * over / ph)
    cw, ch = int(math.ceil(pw * s)) // 2 * 2, int(math.ceil(ph * s)) // 2 * 2
    frame = av.VideoFrame.from_ndarray(photo, format="rgb24")
    return frame.reformat(width=cw, height=ch, format="rgb24", interpolation="BICUBIC").to_ndarray()


def iter_frames(w: int, h: int, seconds: float, seed: int = 0):
    """RGB frames: a new photo every SCENE_S seconds, panned along a smooth path and slowly zoomed."""
    photos = _photos()
    rng = np.random.default_rng(seed)
    n = int(round(seconds * FPS))
    per_scene = int(SCENE_S * FPS)
    canvas = None
    for i in range(n):
        scene, k = divmod(i, per_scene)
        if k == 0:
            canvas = _canvas(photos[scene % len(photos)], w, h)
            ch, cw = canvas.shape[:2]
            z0, z1 = rng.uniform(1.0, 1.5, size=2)  # window = output × zoom (≤ canvas/1.6·1.5 fits)
            phase = rng.uniform(0, 2 * math.pi, size=2)
        u = k / per_scene
        zoom = z0 + (z1 - z0) * u
        ww, wh = min(cw, int(w * zoom)) // 2 * 2, min(ch, int(h * zoom)) // 2 * 2
        x = int((cw - ww) * (0.5 + 0.5 * math.sin(phase[0] + 2 * math.pi * u)))
        y = int((ch - wh) * (0.5 + 0.5 * math.sin(phase[1] + 1.3 * math.pi * u)))
        yield canvas[y:y + wh, x:x + ww], (w, h)


def _encode(path: Path, w: int, h: int, seconds: float, gop: int, preset: str, crf: int) -> None:
    with av.open(str(path), "w", format="mp4") as out:
        st = out.add_stream("libx264", rate=FPS)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.codec_context.gop_size = gop
        # PyAV opens encoders with slice threads, which makes x264 cut every frame into N slices and lets
        # decoders slice-thread unrealistically well; typical x264 output (ffmpeg CLI) is frame-threaded,
        # one slice per frame.
        st.codec_context.thread_type = "FRAME"
        st.options = {"preset": preset, "crf": str(crf),
                      "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:sliced-threads=0"}
        for rgb, (ow, oh) in iter_frames(w, h, seconds):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                width=ow, height=oh, format="yuv420p", interpolation="BILINEAR")
            for pkt in st.encode(frame):
                out.mux(pkt)
        for pkt in st.encode(None):
            out.mux(pkt)


def _concat(src: Path, dst: Path, copies: int) -> None:
    """``copies`` back-to-back copies of ``src`` by remuxing packets with shifted timestamps."""
    with av.open(str(src)) as probe:
        s = probe.streams.video[0]
        frames = sum(1 for p in probe.demux(s) if p.pts is not None)
        span = int(round(frames / FPS / s.time_base))  # one copy's length in time-base units
    with av.open(str(dst), "w", format="mp4") as out:
        ost = None
        for c in range(copies):
            with av.open(str(src)) as inp:
                ist = inp.streams.video[0]
                if ost is None:
                    ost = out.add_stream_from_template(ist)
                for pkt in inp.demux(ist):
                    if pkt.dts is None:
                        continue
                    pkt.pts += c * span
                    pkt.dts += c * span
                    pkt.stream = ost
                    out.mux(pkt)


def video(res: str = "1080p", gop: int = 250, seconds: float = 60, preset: str = "veryfast",
          crf: int = 23) -> Path:
    """Path of a cached benchmark video, generated on first use."""
    w, h = SIZES[res]
    name = f"v{GEN_VERSION}-{res}-g{gop}-{int(seconds)}s-{preset}-crf{crf}.mp4"
    path = cache_dir() / name
    if path.exists():
        return path
    unit = 60.0
    if seconds > unit and seconds % unit == 0 and gop and (unit * FPS) % gop == 0:
        src = video(res, gop, unit, preset, crf)
        maker = lambda tmp: _concat(src, tmp, int(seconds // unit))  # noqa: E731
    else:
        maker = lambda tmp: _encode(tmp, w, h, seconds, gop, preset, crf)  # noqa: E731
    fd, tmp = tempfile.mkstemp(suffix=".mp4", dir=cache_dir(), prefix=".tmp-")
    os.close(fd)
    try:
        maker(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def remuxed(src: Path, ext: str) -> Path:
    """``src``'s packets in another container (``-c copy``), cached beside it."""
    path = src.with_suffix(f".{ext}")
    if not path.exists():
        fd, tmp = tempfile.mkstemp(suffix=f".{ext}", dir=cache_dir(), prefix=".tmp-")
        os.close(fd)
        try:
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-c", "copy", tmp], check=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return path


def describe(path: Path) -> dict:
    """Independent facts about a file: size, duration, frames, keyframe times (from packets)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        keys, n = [], 0
        for pkt in c.demux(s):
            if pkt.pts is None:
                continue
            n += 1
            if pkt.is_keyframe:
                keys.append(float(pkt.pts * pkt.time_base))
        return {"path": str(path), "bytes": path.stat().st_size, "width": s.codec_context.width,
                "height": s.codec_context.height, "frames": n,
                "duration": float(s.duration * s.time_base) if s.duration else None,
                "keyframes": len(keys), "gop_s": (keys[1] - keys[0]) if len(keys) > 1 else None,
                "fps": float(s.average_rate or 0)}


if __name__ == "__main__":  # python bench/_media.py: make every benchmark video now
    import sys
    import time

    wanted = [("1080p", 250, 60), ("1080p", 25, 60), ("720p", 25, 60), ("720p", 250, 60),
              ("360p", 250, 60), ("360p", 250, 1800)]
    for res, gop, secs in wanted:
        t0 = time.perf_counter()
        preset = "ultrafast" if res == "360p" else "veryfast"
        p = video(res, gop, secs, preset=preset)
        print(f"{p.name}: {time.perf_counter() - t0:.1f} s  {describe(p)}", file=sys.stderr)
