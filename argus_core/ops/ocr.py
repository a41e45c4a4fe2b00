"""``ocr``: on-screen text with RapidOCR (PP-OCRv6 small det + rec, PP-OCR v2 angle classifier).

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
        for role in ("det", "cls", "rec"):
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
            "Global.text_score": self.min_score,
            "Det.model_path": str(files["det"]),
            # The detector's own training normalisation (the manifest's input, BGR order, 0..255), not
            # RapidOCR's default 0.5/0.5: with that default the PP-OCRv6 detector saw 45 % of the contrast
            # it was trained on, missed the TAXI sign of bikes@3 s at every scale and found hands and roofs.
            "Det.mean": [m / 255.0 for m in det_in.mean],
            "Det.std": [s / 255.0 for s in det_in.std],
            "Cls.model_path": str(files["cls"]),
            "Rec.model_path": str(files["rec"]),
            # the frame already has the size we want: never upscale it (the default scales the short side
            # up to 736), only cap it
            "Det.limit_type": "max",
            "Det.limit_side_len": self._spec.max_side,
            ort_cfg + "intra_op_num_threads": max(1, threads),
            ort_cfg + "inter_op_num_threads": 1,
            ort_cfg + "use_cuda": "CUDAExecutionProvider" in (providers or []),
        }
        for key, value in self.manifests["rapidocr"].params.get("rapidocr", {}).items():
            cfg.setdefault(key, value)
        engine = RapidOCR(params=cfg)
        got = self._read(engine, _self_check_image())
        text = "".join(t["text"] for t in got).replace(" ", "").upper()
        if text != SELF_CHECK_TEXT.replace(" ", ""):
            raise ModelError(f"rapidocr self-check read {text!r}, expected {SELF_CHECK_TEXT!r}")
        self._engine = engine

    def _read(self, engine: Any, rgb: np.ndarray) -> list[dict[str, Any]]:
        """OCR lines of one RGB image, in that image's pixels (float corners)."""
        out = engine(np.ascontiguousarray(rgb[..., ::-1]))  # RapidOCR takes arrays as BGR
        boxes, txts, scores = getattr(out, "boxes", None), getattr(out, "txts", None), getattr(out, "scores", None)
        if boxes is None or txts is None or scores is None:
            return []
        return [{"text": str(t), "score": float(s), "pts": np.asarray(b, dtype=np.float64).reshape(4, 2)}
                for b, t, s in zip(boxes, txts, scores) if str(t).strip()]

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
                if line["score"] < floor:
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
