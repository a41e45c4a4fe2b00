"""The ``ocr`` op with the real RapidOCR models: subtitles drawn onto real photos, in a real video."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import av
import numpy as np
import pytest

pytest.importorskip("rapidocr", reason="ocr needs the rapidocr package (pip install rapidocr==3.10.0)")
from PIL import Image, ImageDraw, ImageFont  # noqa: E402  (a dependency of rapidocr and scikit-image)

from argus_core import Engine  # noqa: E402
from argus_core.media.renditions import Frame  # noqa: E402
from argus_core.runtime.manifest import MODELS_DIR, ModelError  # noqa: E402
from argus_core.ops import create_op  # noqa: E402
from argus_core.ops.ocr import keyword_hits, keyword_matches  # noqa: E402
from argus_core.request import OpParams  # noqa: E402

from .videos import encode  # noqa: E402

FONT_FILES = ("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",  # Debian fonts-dejavu-core
              "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf")
SUBTITLE = "Breaking news tonight at 9"


def font(size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_FILES:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)  # Pillow's own scalable font (needs FreeType)


def resized(img: np.ndarray, w: int, h: int) -> np.ndarray:
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
    return frame.reformat(w, h).to_ndarray(format="rgb24")


def with_subtitle(img: np.ndarray, text: str, w: int, h: int) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The photo at w×h with a white, black-outlined subtitle near the bottom; returns the text's box."""
    im = Image.fromarray(resized(img, w, h))
    draw = ImageDraw.Draw(im)
    f = font(max(12, h // 18))
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=f, stroke_width=2)
    pos = ((w - (x1 - x0)) // 2, int(h * 0.86) - (y1 - y0))
    draw.text(pos, text, font=f, fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
    box = draw.textbbox(pos, text, font=f, stroke_width=2)
    return np.asarray(im), box


def squash(text: str) -> str:
    return "".join(text.split()).casefold()


def inside(pts: list[list[int]], box: tuple[int, int, int, int], margin: int) -> bool:
    x0, y0, x1, y1 = box
    return all(x0 - margin <= x <= x1 + margin and y0 - margin <= y <= y1 + margin for x, y in pts)


# -- keyword matching (pure) ------------------------------------------------------------------------------
def test_keyword_hits_whole_words_case_and_width():
    texts = ["BREAKING News tonight", {"text": "ＡＴＴＡＣＫ at dawn", "score": 0.9}, "a crisis unfolds"]
    assert keyword_hits(texts, ["news", "attack", "isis", "dawn", "weather"]) == ["news", "attack", "dawn"]
    assert keyword_hits(texts, ["new", "Breaking  news"]) == ["Breaking  news"]  # "new" is not a word here
    assert keyword_hits([], ["news"]) == [] and keyword_hits(texts, []) == []


def test_keyword_hits_cjk_and_scores():
    lines = [{"text": "恐怖分子袭击", "score": 0.8}, {"text": "天气 预报", "score": 0.95}]
    assert keyword_hits(lines, ["袭击", "天气预报", "地震"]) == ["袭击", "天气预报"]
    assert dict(keyword_matches(lines, ["袭击", "天气预报"])) == {"袭击": 0.8, "天气预报": 0.95}
    # a phrase split over two subtitle lines still counts, with the weaker line's score
    two = [{"text": "breaking", "score": 0.9}, {"text": "news", "score": 0.7}]
    assert keyword_matches(two, ["breaking news"]) == [("breaking news", 0.7)]


# -- the op on single frames (no engine) ------------------------------------------------------------------
@pytest.fixture(scope="module")
def ocr_op():
    """The ocr op, loaded with every network connection refused: models come from the installed package."""
    def refuse(*a, **k):
        raise OSError("network disabled in this test")

    saved = socket.socket.connect, socket.create_connection
    socket.socket.connect, socket.create_connection = refuse, refuse
    try:
        op = create_op("ocr")
        op.load()
        yield op
    finally:
        socket.socket.connect, socket.create_connection = saved


def frame_for(op, img: np.ndarray) -> Frame:
    h, w = img.shape[:2]
    spec = op.specs()[0]
    vw, vh = spec.size_for(w, h)
    return Frame(offset=0, src_w=w, src_h=h, views={spec: resized(img, vw, vh)})


def test_reads_subtitle_on_a_photo_in_source_pixels(ocr_op):
    from skimage import data

    img, box = with_subtitle(data.coffee(), SUBTITLE, 1920, 1080)  # the op sees it at 960×540
    out = ocr_op.infer([frame_for(ocr_op, img)], [OpParams()])[0]
    lines = [t for t in out.result["texts"] if squash(t["text"]) == squash(SUBTITLE)]
    assert len(lines) == 1, out.result
    line = lines[0]
    assert line["score"] > 0.8
    assert inside(line["pts"], box, margin=24), (line["pts"], box)
    xs = [p[0] for p in line["pts"]]
    assert max(xs) - min(xs) > 0.8 * (box[2] - box[0])  # the whole line, not a fragment
    assert out.labels == []  # no keywords: no labels


def test_operator_keywords_and_request_override(ocr_op):
    from skimage import data

    img, _ = with_subtitle(data.astronaut(), SUBTITLE, 1280, 720)
    f = frame_for(ocr_op, img)
    ocr_op.options["ocr_keywords"] = ["tonight", "weather"]
    try:
        by_option = ocr_op.infer([f], [OpParams()])[0]
        by_request = ocr_op.infer([f], [OpParams(other={"keywords": ["Breaking News", "sport"]})])[0]
    finally:
        ocr_op.options.pop("ocr_keywords")
    assert [lab.label for lab in by_option.labels] == ["tonight"]
    assert [lab.label for lab in by_request.labels] == ["Breaking News"]
    assert 0.5 <= by_request.labels[0].score <= 1


def test_a_photo_without_text_has_no_subtitle(ocr_op):
    from skimage import data

    out = ocr_op.infer([frame_for(ocr_op, resized(data.coffee(), 1280, 720))],
                       [OpParams(other={"keywords": ["news"]})])[0]
    assert not any("news" in t["text"].casefold() for t in out.result["texts"])
    assert out.labels == []


def test_changed_model_file_is_refused(tmp_path):
    """A manifest whose pinned hash does not match the installed file → the op refuses (never downloads)."""
    folder = tmp_path / "rapidocr"
    shutil.copytree(MODELS_DIR / "rapidocr", folder)
    raw = json.loads((folder / "manifest.json").read_text())
    raw["params"]["files"]["rec"]["sha256"] = "0" * 64
    (folder / "manifest.json").write_text(json.dumps(raw))
    op = create_op("ocr", tmp_path)
    with pytest.raises(ModelError, match="sha256"):
        op.load()


# -- through the engine -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def subtitle_video(tmp_path_factory):
    """4 s at 1280×720, 5 fps, a keyframe every second: coffee with a subtitle (0–2 s), astronaut without."""
    from skimage import data

    w, h = 1280, 720
    sub, box = with_subtitle(data.coffee(), SUBTITLE, w, h)
    plain = resized(data.astronaut(), w, h)
    frames = [sub] * 10 + [plain] * 10
    path = encode(tmp_path_factory.mktemp("ocr") / "subtitle.mp4", frames, fps=5, w=w, h=h, gop=5, bframes=0)
    return path, box


@pytest.fixture(scope="module")
def engine():
    with Engine(ops=["ocr"], decoders=1, workers=1) as e:
        yield e


def test_engine_ocr_subtitle_segments(engine, subtitle_video):
    path, box = subtitle_video
    body = {"data": {"uri": str(path)}, "params": {"vframe": {"mode": 1}},
            "ops": [{"op": "ocr", "params": {"other": {"keywords": ["news", "weather"]}}}]}
    out = engine.analyze(body, timeout=120)["ocr"]
    segs = out["segments"]
    assert [[c["offset"] for c in s["cuts"]] for s in segs] == [[0, 1000], [2000, 3000]]
    assert [[lab["label"] for lab in s["labels"]] for s in segs] == [["news"], []]
    for cut in segs[0]["cuts"]:
        lines = [t for t in cut["result"]["texts"] if squash(t["text"]) == squash(SUBTITLE)]
        assert len(lines) == 1 and inside(lines[0]["pts"], box, margin=24), cut["result"]
    for cut in segs[1]["cuts"]:
        assert not any("news" in t["text"].casefold() for t in cut["result"]["texts"])
    assert [lab["label"] for lab in out["labels"]] == ["news"]

    # without keywords: the same texts, no labels (cuts with no labels are kept, one segment)
    body["ops"][0]["params"] = {}
    plain = engine.analyze(body, timeout=120)["ocr"]
    assert plain["labels"] == [] and len(plain["segments"]) == 1
    texts = [c["result"] for c in plain["segments"][0]["cuts"]]
    assert texts == [c["result"] for s in segs for c in s["cuts"]]
