"""Display orientation (issue 9): a phone clip stores its pixels sideways and a display matrix says how to show
them. Frames must reach the models upright and boxes must be in displayed pixels.

The oracle for "displayed" is FFmpeg's own autorotation (the ``ffmpeg`` CLI decoding the clip to PNG), not
our reading of the matrix; the clips are built from real footage (opencv-doc ``vtest.avi``) with the CLI.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from argus_core.media.renditions import Converter, FrameSpec, displayed_size, quarter_turns, upright
from argus_core.media.sampler import FrameGrabber
from argus_core.media.source import source_for

from .data import footage_or_skip

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg CLI")


@pytest.mark.parametrize("rotation, turns", [(0, 0), (90, 1), (-90, 3), (180, 2), (-180, 2), (270, 3),
                                             (89.6, 1), (None, 0), (45.1, 1), (44.9, 0)])
def test_quarter_turns(rotation, turns):
    assert quarter_turns(rotation) == turns


def test_displayed_size():
    assert displayed_size(1920, 1080, 90) == (1080, 1920)
    assert displayed_size(1920, 1080, 180) == (1920, 1080)
    assert displayed_size(1920, 1080, -90) == (1080, 1920)


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True, timeout=120)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    """``upright``: 8 s of vtest.avi; ``phone``/``phone270``: the same pixels stored turned a quarter
    clockwise / counter-clockwise, with the display matrix that shows them upright again."""
    d = tmp_path_factory.mktemp("orientation")
    src = footage_or_skip("vtest")
    up = d / "upright.mp4"
    _ffmpeg("-i", str(src), "-t", "8", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25", str(up))
    out = {"upright": up}
    for name, transpose, rotate in (("phone", "1", "90"), ("phone270", "2", "270")):
        sideways = d / f"{name}-raw.mp4"
        _ffmpeg("-i", str(up), "-vf", f"transpose={transpose}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                "-g", "25", str(sideways))
        _ffmpeg("-i", str(sideways), "-c", "copy", "-metadata:s:v:0", f"rotate={rotate}", str(d / f"{name}.mp4"))
        out[name] = d / f"{name}.mp4"
    return out


def _first(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as c:
        return next(c.decode(video=0))


def _ffmpeg_shows(path: Path, tmp: Path) -> np.ndarray:
    png = tmp / (path.stem + ".png")
    _ffmpeg("-i", str(path), "-frames:v", "1", str(png))  # autorotate is on by default
    with av.open(str(png)) as c:
        return next(c.decode(video=0)).to_ndarray(format="rgb24")


@pytest.mark.parametrize("name", ["phone", "phone270"])
def test_clips_are_stored_sideways_and_shown_upright_by_ffmpeg(clips, name, tmp_path):
    stored = _first(clips[name])
    assert (stored.width, stored.height) == (576, 768) and stored.rotation != 0  # vtest is 768x576
    shown = _ffmpeg_shows(clips[name], tmp_path)
    upright_px = _ffmpeg_shows(clips["upright"], tmp_path)
    assert shown.shape == upright_px.shape
    assert np.abs(shown.astype(int) - upright_px).mean() < 3  # the construction is right: FFmpeg agrees


@pytest.mark.parametrize("name", ["phone", "phone270"])
@pytest.mark.parametrize("spec", [FrameSpec(320, 320, "stretch"), FrameSpec(416, 416, "letterbox"),
                                  FrameSpec(224, 224, "cover"), FrameSpec(max_side=640)])
def test_renditions_are_of_the_displayed_picture(clips, name, spec, tmp_path):
    stored = _first(clips[name])
    conv = Converter([spec], stored.width, stored.height).follow(stored)
    assert conv.display == (768, 576)
    (ours,) = conv.convert(stored)
    shown = av.VideoFrame.from_ndarray(_ffmpeg_shows(clips[name], tmp_path), format="rgb24")
    (want,) = Converter([spec], shown.width, shown.height).convert(shown)
    assert ours.shape == want.shape
    assert np.abs(ours.astype(int) - want).mean() < 4


def test_upright_and_the_grabber_give_the_shown_frame(clips, tmp_path):
    shown = _ffmpeg_shows(clips["phone"], tmp_path)
    assert np.abs(upright(_first(clips["phone"])).to_ndarray(format="rgb24").astype(int) - shown).mean() < 3
    grabber = FrameGrabber(source_for(str(clips["phone"])))
    try:
        frame = grabber.frame_at(0)
    finally:
        grabber.close()
    assert (frame.width, frame.height) == (768, 576)  # saved cuts and report thumbnails are upright


def test_phone_clip_gives_the_upright_clips_boxes(clips):
    """The person boxes on the phone clips are those of the upright clip, in displayed pixels (before this,
    the sideways pedestrians were missed and boxes came in the stored orientation)."""
    from argus_core import Engine

    def boxes(path: Path) -> dict[int, list[tuple[float, ...]]]:
        body = {"data": {"uri": str(path)}, "params": {"vframe": {"mode": 0, "interval": 2}},
                "ops": [{"op": "detection"}]}
        out: dict[int, list[tuple[float, ...]]] = {}
        for seg in engine.analyze(body)["detection"]["segments"]:
            for cut in seg["cuts"]:
                out[cut["offset"]] = sorted(
                    (min(p[0] for p in d["pts"]), min(p[1] for p in d["pts"]),
                     max(p[0] for p in d["pts"]), max(p[1] for p in d["pts"]))
                    for d in cut["result"]["detections"] if d["class"] == "person")
        return out

    # fp32 (also the default): this is about orientation, and the bound below (one box more or less per cut)
    # was measured on the fp model. The int8 NanoDet (issue 14, `precision: int8` only) moves near-threshold
    # scores more on the re-encoded copy: two boxes more in one cut of 'phone' (6 s) — one reason it is not chosen.
    with Engine(decoders=1, workers=1, ops=["detection"], options={"precision": "fp32"}) as engine:
        want = boxes(clips["upright"])
        got = {name: boxes(clips[name]) for name in ("phone", "phone270")}
    total = sum(len(v) for v in want.values())
    assert total >= 4  # vtest: several pedestrians per frame
    for name, per_cut in got.items():
        assert per_cut.keys() == want.keys(), name
        matched = 0
        for off, bs in want.items():
            # a re-encoded sideways copy moves a score near the threshold now and then: at most one box more
            # or less per cut, and the rest the same boxes (IoU >= 0.6; measured 0.65-1.0, median 0.99) in displayed pixels
            assert abs(len(per_cut[off]) - len(bs)) <= 1, (name, off, per_cut[off], bs)
            matched += sum(1 for b in bs if any(_iou(a, b) >= 0.6 for a in per_cut[off]))
        assert matched >= 0.9 * total, (name, matched, total)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
