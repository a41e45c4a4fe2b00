"""``ocr``: on-screen text with RapidOCR (PP-OCRv6 small text detector + recogniser).

Result ``{"texts": [{"text", "score", "pts"}]}`` per cut, lines in reading order (top to bottom, left to
right), ``pts`` the four corners of each line's box in source-frame pixels (clockwise from top-left).
Labels: none, unless a keyword list is given — ``params.other.keywords`` (a list of strings) in the request,
else the operator's ``ocr_keywords`` option — then the keywords found in the frame's text (see
:func:`keyword_hits`), each scored with the best score of the lines it was found in.

The models ship inside the ``rapidocr`` PyPI package (``models/rapidocr/manifest.json`` pins the version and
the sha256 of each ONNX file). They are loaded from the installed package by explicit path, after their
hashes are checked, so RapidOCR never reaches its download code; a missing package, a wrong version or a
changed file makes the op refuse (``bad op``). Load also reads a line of text drawn with OpenCV's built-in
font and refuses unless it comes back right.

Around RapidOCR (each measured on real footage and drawn text, see ``models/EVAL.md``): the detector gets
its training normalisation; lines are read upright, and a weak line is read a second time upside down (in
place of RapidOCR's 0/180 classifier, which flipped upright lines); word gaps come from the recogniser's
own space class (:func:`ctc_decode_spaced`); short lines and lone glyphs must pass :func:`line_kept`.

Operator options: ``ocr_keywords`` (list of strings), ``ocr_max_side`` (longest side of the frame the
models see, default from the manifest, 960), ``ocr_min_score`` (lines below are dropped, default 0.5; a
request may raise it with ``params.other.min_score``).
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..media.renditions import Frame, FrameSpec
from ..runtime.manifest import ModelError
from ..request import OpParams
from ..result import Label
from .base import CutOutput, Op
from .params import SCORE, Texts, other_float
from ..runtime.manifest import check_file_hash, package_file
from ..runtime.session import Model as ManifestModel

#: text the load-time self-check draws and must read back
SELF_CHECK_TEXT = "ARGUS 2024 OCR"


# -- keyword matching (also used by the terror ops) --------------------------------------------------------
#: scripts written without spaces between words: Thai/Lao, CJK (Han, kana, Hangul) and their extensions
_CJK = "\u0e00-\u0eff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003ffff"
_CJK_GAP = re.compile(f"(?<=[{_CJK}])\\s+(?=[{_CJK}])")


def _is_cjk(ch: str) -> bool:
    return re.match(f"[{_CJK}]", ch) is not None


def normalise_text(text: str) -> str:
    """NFKC (full-width → ASCII, compatibility forms), case-folded, whitespace collapsed to one space and
    dropped between CJK characters (OCR puts spaces there at random)."""
    return _CJK_GAP.sub("", " ".join(unicodedata.normalize("NFKC", text).casefold().split()))


@lru_cache(maxsize=4096)
def _keyword_pattern(keyword: str) -> re.Pattern[str] | None:
    kw = normalise_text(keyword)
    if not kw:
        return None
    body = r"\s*".join(re.escape(part) for part in kw.split(" "))
    # Words of spaced scripts must match whole (``isis`` is not in ``crisis``); CJK matches anywhere.
    head = r"(?<!\w)" if (kw[0].isalnum() and not _is_cjk(kw[0])) else ""
    tail = r"(?!\w)" if (kw[-1].isalnum() and not _is_cjk(kw[-1])) else ""
    return re.compile(head + body + tail)


def keyword_matches(texts: Iterable[Any], keywords: Iterable[str]) -> list[tuple[str, float]]:
    """``(keyword, best score)`` for every keyword found in the texts, in the keywords' order.

    ``texts`` are strings (score 1.0) or OCR lines ``{"text", "score"}``. Matching ignores case, width
    (NFKC) and spacing; keywords of spaced scripts match whole words only, CJK keywords match anywhere."""
    lines: list[tuple[str, float]] = []
    for t in texts:
        if isinstance(t, str):
            lines.append((normalise_text(t), 1.0))
        elif isinstance(t, dict) and isinstance(t.get("text"), str):
            lines.append((normalise_text(t["text"]), float(t.get("score", 1.0))))
    found: dict[str, float] = {}
    for kw in keywords:
        if not isinstance(kw, str) or kw in found:
            continue
        pat = _keyword_pattern(kw)
        if pat is None:
            continue
        scores = [s for text, s in lines if pat.search(text)]
        if not scores:
            # a keyword may be split over two lines of a subtitle; also try the lines joined
            joined = " ".join(text for text, _ in lines)
            if len(lines) > 1 and pat.search(joined):
                scores = [min(s for _, s in lines)]
        if scores:
            found[kw] = max(scores)
    return list(found.items())


def keyword_hits(texts: Iterable[Any], keywords: Iterable[str]) -> list[str]:
    """The keywords found in ``texts`` (strings or ``{"text", "score"}`` lines), in the keywords' order."""
    return [kw for kw, _ in keyword_matches(texts, keywords)]


def request_keywords(params: OpParams, options: dict[str, Any]) -> list[str]:
    kws = params.other.get("keywords")
    if kws is None:
        kws = options.get("ocr_keywords") or []
    if isinstance(kws, str):
        kws = [kws]
    if not isinstance(kws, (list, tuple)):
        return []  # refused at submit (check_params); never raise inside a shared batch
    return [k for k in kws if isinstance(k, str) and k.strip()]


# -- reading a line: word gaps from the recogniser's space class ------------------------------------------
#: A word gap is read where the recogniser's space class reaches this probability on a blank step between
#: two characters. Measured on 387 correctly read lines (drawn on real frames in 8 fonts at 9-144 px, the
#: printed page of scikit-image's ``page.png``, the eval subtitle): the space class is 0.00 inside words and
#: 0.2-0.5 in narrow gaps that argmax decoding reads as blank ("THERABBITWAKESUP"). At 0.1: 98.3 % of the 539
#: word gaps found (argmax alone: 95.0 %) and none of the 2,550 letter gaps split; at 0.05 one was split.
SPACE_FLOOR = 0.1


def ctc_decode_spaced(probs: np.ndarray, chars: Sequence[str], space_floor: float = SPACE_FLOOR) -> tuple[str, float]:
    """Greedy CTC decoding of one line (``probs`` ``[steps, classes]``, class 0 the blank, ``chars[i]`` the
    text of class ``i``), plus a space between two characters when, on a blank step between them, the space
    class reaches ``space_floor`` — never between two characters of a script written without spaces (CJK,
    Thai). The score is RapidOCR's: the mean probability of the characters the argmax emits (inserted
    spaces do not count), so score thresholds mean the same as with RapidOCR's own decoder."""
    if probs.ndim != 2 or probs.shape[0] == 0:
        return "", 0.0
    space = chars.index(" ") if " " in chars else -1
    best = probs.argmax(axis=1)
    emit = np.ones(len(best), dtype=bool)
    emit[1:] = best[1:] != best[:-1]
    emit &= best != 0
    out: list[str] = []
    conf: list[float] = []
    prev = -1
    for t in np.flatnonzero(emit):
        ch = chars[best[t]]
        if out and space >= 0 and ch != " " and out[-1] != " " and not (_is_cjk(ch) and _is_cjk(out[-1])):
            gap = slice(prev + 1, t)
            blanks = best[gap] == 0
            if blanks.any() and float(probs[gap, space][blanks].max()) >= space_floor:
                out.append(" ")
        out.append(ch)
        conf.append(float(probs[t, best[t]]))
        prev = t
    return "".join(out).strip(), (float(np.mean(conf)) if conf else 0.0)


class _SpacedDecoder:
    """Stands in for RapidOCR's CTC decoder (``TextRecognizer.postprocess_op``, same call): lines decoded
    by :func:`ctc_decode_spaced`; per-word boxes are not offered (the op never asks for them)."""

    def __init__(self, character: list[str]) -> None:
        self.character = character

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **_: Any) -> tuple[list, list]:
        return [tuple(ctc_decode_spaced(p, self.character)) for p in preds], []


# -- which lines are text ---------------------------------------------------------------------------------
#: Lines of at most this many glyphs (characters other than spaces) are "short".
SHORT_LINE_GLYPHS = 4
#: Short lines need this score. Measured on 198 textless images (bigbuckbunny, tree, Megamind, carphone at
#: 4 frames/s; 30 textless opencv-doc photos; Megamind_bugy at 2 frames/s): 2-4 glyph readings of faces,
#: hands and flowers scored at most 0.74 ("1890" on the carphone face); 124 drawn 2-4 glyph words read
#: right (on the same footage frames, 8 fonts, 9-144 px) scored at least 0.94.
SHORT_LINE_MIN_SCORE = 0.8
#: A lone glyph needs this score ... (on the textless images lone glyphs scored up to 0.99: "2" on the
#: carphone face, "7" 0.98 on the hand of tree@29.5 s, "N" 0.95 on a flower of bigbuckbunny; the 41 drawn
#: lone glyphs read right: median 0.98, 30 at >= 0.9)
GLYPH_MIN_SCORE = 0.9
#: ... a box at least this many pixels on its short side, in the image the models saw (the "2" and the
#: flowers are 8-13 px boxes; 30 of the 41 drawn lone glyphs had >= 16 px, and 22 pass both rules: lone
#: glyphs are the price, they carry little meaning on their own) ...
GLYPH_MIN_PX = 16
#: ... a box at most this many times as wide as it is tall (of 102 drawn wide lone glyphs read right, W, M, m,
#: w, %, & among them, 101 had <= 1.6; the head of a street lamp in vtest, read as "1" at 0.96-0.99 in 5 of
#: its 80 cuts, is 2.1) ...
GLYPH_MAX_ASPECT = 1.8
#: ... and a box that does not run into two opposite frame edges (within this many pixels): such a box is a
#: hand, a wall or a car roof cut by the frame (the "1"/"7" of tree@24-29 s, the "口"/"1" of bikes@1 s),
#: and a glyph cut on both sides is no readable glyph.
EDGE_PX = 2


def glyph_count(text: str) -> int:
    return sum(1 for ch in text if not ch.isspace())


def line_kept(text: str, score: float, pts: np.ndarray, width: int, height: int, floor: float) -> bool:
    """Whether an OCR line is kept: ``score`` at least ``floor``, short lines (≤ :data:`SHORT_LINE_GLYPHS`
    glyphs) at least :data:`SHORT_LINE_MIN_SCORE`, a lone glyph at least :data:`GLYPH_MIN_SCORE` with a box
    of at least :data:`GLYPH_MIN_PX` on its short side, at most :data:`GLYPH_MAX_ASPECT` times as wide as
    tall, that does not span the frame from edge to edge. ``pts`` are the box corners (clockwise from
    top-left) in the pixels of the ``width``×``height`` image the models read."""
    glyphs = glyph_count(text)
    if glyphs == 0 or score < floor:
        return False
    if glyphs > SHORT_LINE_GLYPHS:
        return True
    if score < SHORT_LINE_MIN_SCORE:
        return False
    if glyphs > 1:
        return True
    box = np.asarray(pts, dtype=np.float64).reshape(4, 2)
    w, h = float(np.linalg.norm(box[0] - box[1])), float(np.linalg.norm(box[0] - box[3]))
    (x0, y0), (x1, y1) = box.min(axis=0).tolist(), box.max(axis=0).tolist()
    spans = (x0 <= EDGE_PX and x1 >= width - 1 - EDGE_PX) or (y0 <= EDGE_PX and y1 >= height - 1 - EDGE_PX)
    return (score >= GLYPH_MIN_SCORE and min(w, h) >= GLYPH_MIN_PX and w <= GLYPH_MAX_ASPECT * h
            and not spans)


#: The detector's box score (mean text probability inside a box) that a box needs. RapidOCR's default 0.5
#: dropped real lines: of the 374 drawn lines kept with the threshold at 0.3, 4 % had box scores of 0.3-0.4
#: and 10 % 0.4-0.5; the extra boxes on textless frames are blobs that the recogniser scores low and
#: line_kept drops (no textless image gained a kept line).
DET_BOX_THRESH = 0.3

#: A line read with a score below this is read a second time turned 180° (text upside down on screen, or a
#: tall box that RapidOCR turned the wrong way: the sideways labels of opencv-doc's box.png read at 0.5-0.7,
#: and at 0.97-1.0 once turned) ...
REREAD_BELOW = 0.9
#: ... and the turned reading replaces the first one only at this score: junk gets a second chance there
#: ("OD" 0.36 on a Megamind face became "10" 0.87 turned, the rings of the OpenCV logo "33" 0.90), while
#: drawn lines turned upside down read right at >= 0.95 in 97 % (5+ glyphs, 77 lines) and 95 % (2-4, 43).
REREAD_MIN_SCORE = 0.95


# -- the op -----------------------------------------------------------------------------------------------
class OcrOp(Op):
    name = "ocr"
    other_params = {"min_score": SCORE, "keywords": Texts()}
    models = ("rapidocr",)
    description = ("on-screen text lines {texts:[{text, score, pts}]} (RapidOCR PP-OCRv6, Chinese + English); "
                   "labels = keywords found, when params.other.keywords or the ocr_keywords option is set")

    def __init__(self, models_dir=None, options=None) -> None:
        super().__init__(models_dir, options)
        man = self.manifests["rapidocr"]
        side = int(self.options.get("ocr_max_side") or man.input.max_side or 960)
        self._spec = FrameSpec(0, 0, "stretch", side)
        self.min_score = float(self.options.get("ocr_min_score", man.params.get("min_score", 0.5)))
        self._engine: Any = None

    def specs(self) -> tuple[FrameSpec, ...]:
        return (self._spec,)

    def _files(self) -> dict[str, Path]:
        man = self.manifests["rapidocr"]
        files = man.params.get("files") or {}
        out = {}
        for role in ("det", "rec"):
            entry = files.get(role)
            if not entry or not entry.get("path") or not entry.get("sha256"):
                raise ModelError(f"rapidocr manifest: params.files.{role} needs path and sha256")
            path = package_file(entry["path"], man.source.package, man.source.version)
            check_file_hash(path, entry["sha256"], f"rapidocr {role}")
            out[role] = path
        return out

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        if self._engine is not None:
            return
        folder = self.models_dir / "rapidocr"
        files = self._files()
        # the detector's outputs on the fixed image (the manifest's check section); the session is not kept
        ManifestModel(folder, providers=providers, threads=threads)
        try:
            import cv2
            from rapidocr import RapidOCR
        except ImportError as exc:
            raise ModelError(f"rapidocr is not importable: {exc}") from exc
        cv2.setNumThreads(max(1, threads))
        ort_cfg = "EngineConfig.onnxruntime."
        det_in = self.manifests["rapidocr"].input
        cfg: dict[str, Any] = {
            "Global.log_level": "error",
            # every line comes back: the floor and the rules of line_kept apply after the second reading
            "Global.text_score": 0.0,
            # frames are upright (the decoder honours the display matrix); RapidOCR's 0/180 classifier
            # (PP-OCR v2.0 mobile) turned 4 of the 7 upright lines of scikit-image's page.png upside down
            # at >= 0.9 confidence and read them as garbage — weak lines are re-read turned instead (_read)
            "Global.use_cls": False,
            "Det.model_path": str(files["det"]),
            # The detector's own training normalisation (the manifest's input, BGR order, 0..255), not
            # RapidOCR's default 0.5/0.5: with that default the PP-OCRv6 detector saw 45 % of the contrast
            # it was trained on, missed the TAXI sign of bikes@3 s at every scale and found hands and roofs.
            "Det.mean": [m / 255.0 for m in det_in.mean],
            "Det.std": [s / 255.0 for s in det_in.std],
            "Det.box_thresh": DET_BOX_THRESH,
            "Rec.model_path": str(files["rec"]),
            # the frame already has the size we want: never upscale it (the default scales the short side
            # up to 736), only cap it — PaddleOCR evaluates this detector the same way (limit_type max),
            # and upscaling 640x272 to 1728x736 found more blobs (39 vs 16 candidate lines on the eval
            # frames) and read TAXI worse (box score 0.51 vs 0.89), at 2.3x the time
            "Det.limit_type": "max",
            "Det.limit_side_len": self._spec.max_side,
            ort_cfg + "intra_op_num_threads": max(1, threads),
            ort_cfg + "inter_op_num_threads": 1,
            ort_cfg + "use_cuda": "CUDAExecutionProvider" in (providers or []),
        }
        for key, value in self.manifests["rapidocr"].params.get("rapidocr", {}).items():
            cfg.setdefault(key, value)
        engine = RapidOCR(params=cfg)
        card = _self_check_image()
        if not self._read(engine, card):  # loads the detector and the recogniser
            raise ModelError("rapidocr self-check read nothing")
        rec = getattr(engine, "text_rec", None)
        character = getattr(getattr(rec, "postprocess_op", None), "character", None)
        if not isinstance(character, list) or " " not in character:
            raise ModelError("rapidocr: the recogniser has no character list with a space class")
        rec.postprocess_op = _SpacedDecoder(character)
        text = " ".join(t["text"] for t in self._read(engine, card)).upper()
        if text != SELF_CHECK_TEXT:  # the words and the gaps between them
            raise ModelError(f"rapidocr self-check read {text!r}, expected {SELF_CHECK_TEXT!r}")
        self._engine = engine

    def _read(self, engine: Any, rgb: np.ndarray) -> list[dict[str, Any]]:
        """OCR lines of one RGB image, in that image's pixels (float corners), unfiltered; a line read
        below :data:`REREAD_BELOW` is read again turned 180°, and that reading kept if it reaches
        :data:`REREAD_MIN_SCORE`."""
        bgr = np.ascontiguousarray(rgb[..., ::-1])  # RapidOCR takes arrays as BGR
        out = engine(bgr)
        boxes, txts, scores = getattr(out, "boxes", None), getattr(out, "txts", None), getattr(out, "scores", None)
        if boxes is None or txts is None or scores is None:
            return []
        lines = [{"text": str(t).strip(), "score": float(s), "pts": np.asarray(b, dtype=np.float64).reshape(4, 2)}
                 for b, t, s in zip(boxes, txts, scores)]
        weak = [line for line in lines if line["score"] < REREAD_BELOW]
        if weak and getattr(engine, "text_rec", None) is not None:
            from rapidocr.ch_ppocr_rec import TextRecInput
            from rapidocr.utils.process_img import get_rotate_crop_image

            # the crop RapidOCR read (a tall box turned 90°), turned a further 180°
            crops = [np.ascontiguousarray(np.rot90(get_rotate_crop_image(bgr, line["pts"].astype(np.float32)), 2))
                     for line in weak]
            again = engine.text_rec(TextRecInput(img=crops))
            for line, t, sc in zip(weak, again.txts or (), again.scores or ()):
                if float(sc) >= max(REREAD_MIN_SCORE, line["score"]) and str(t).strip():
                    line["text"], line["score"] = str(t).strip(), float(sc)
        return [line for line in lines if line["text"]]

    def read_frames(self, frames: Sequence[Frame], min_score: float | None = None) -> list[list[dict[str, Any]]]:
        """Text lines ``{"text", "score", "pts"}`` of each frame, ``pts`` in source-frame pixels.

        For other ops that use on-screen text (terror): make an ``OcrOp(models_dir, options)``, add its
        ``specs()`` to your own, ``load()`` it in your ``load``, then call this on your frames."""
        if self._engine is None:
            raise ModelError("ocr: model not loaded")
        floor = self.min_score if min_score is None else max(self.min_score, min_score)
        out = []
        for f in frames:
            view = f.views[self._spec]
            vh, vw = view.shape[:2]
            scale = np.array([f.src_w / vw, f.src_h / vh])
            texts = []
            for line in self._read(self._engine, view):
                if not line_kept(line["text"], line["score"], line["pts"], vw, vh, floor):
                    continue
                pts = np.clip(line["pts"] * scale, 0, [f.src_w, f.src_h]).round().astype(int)
                texts.append({"text": line["text"], "score": round(line["score"], 4), "pts": pts.tolist()})
            out.append(texts)
        return out

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        results = []
        for f, prm in zip(frames, params):
            texts = self.read_frames([f], other_float(prm, "min_score", 0.0))[0]
            kws = request_keywords(prm, self.options)
            labels = [Label(kw, round(s, 4)) for kw, s in keyword_matches(texts, kws)] if kws else []
            results.append(CutOutput(labels=labels, result={"texts": texts}))
        return results


def _self_check_image() -> np.ndarray:
    """White card with :data:`SELF_CHECK_TEXT` in OpenCV's built-in Hershey font (no font files)."""
    import cv2

    img = np.full((96, 560, 3), 255, np.uint8)
    cv2.putText(img, SELF_CHECK_TEXT, (16, 64), cv2.FONT_HERSHEY_SIMPLEX, 1.4, (0, 0, 0), 3, cv2.LINE_AA)
    return img
