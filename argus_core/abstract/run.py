"""A whole video abstract in one decode pass (issue 11, CONTRACT §12): shots, features, scenes, clips, texts.

One call of the sampler's decode loop (:func:`argus_core.media.sampler.frames`) serves two consumers: the
*tap* grid (64×36 frames every ``tap_step_s``, 100 ms) feeds :class:`~.shots.ShotDetector`, the *op* grid
(every ``op_step_s``, 400 ms — a subset of the tap grid, so it costs no extra decoding, and as long as the
shortest shot, so every shot holds one) fills a bounded buffer of decoded frames. Each time the detector
decides a boundary (a cut put on its exact frame from the frames of its window: those the loop decoded anyway
when none is missing, :class:`_Tapper`, else decoded again, :class:`_Refiner`), the shot before it is closed:
up to ``frames_per_shot`` of its buffered frames are converted to the models' sizes and run through the ops
in this process (``image_label`` tags, ``detection`` COCO classes, face detection — and gallery names with
``enablePersonName`` — and ``ocr`` lines), then dropped. Memory stays flat in the length: the buffer keeps
the last few seconds and thins older frames (:func:`~.evidence.thin_keep`).

After the pass: scenes (:func:`~.scenes.group_scenes` over the shots' colour histograms), clips
(:func:`~.clips.segment_clips`), programme, and a grounded text per item (:func:`~.text.write_text`). The
result is the GET response of CONTRACT §12 (``clipResults`` with ``contentId = <taskId>_<level>_<index>``)
plus the §14 extras on shots (confidence, frames, SMPTE timecodes, transition, keyframe) and the technical
cues as level-3 siblings.

Errors are the seed's (``InvalidMedia``, ``TimeOut``, ``InternalError``: :class:`AbstractError`); a stop
request ends decoding at the next frame and raises :class:`~argus_core.errors.Cancelled`.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import av
import av.error
import msgspec
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from ..errors import ArgusError, Cancelled, CannotOpen, VideoNotFound
from ..media.renditions import Converter, Frame, FrameSpec, unique_specs
from ..ops.image_label import spec_of
from ..media.chunks import parallel_frames
from ..media.clock import Clock, ms
from ..media.sampler import TAP, Sample, frames as sample_frames
from ..media.source import Source, map_av_error, source_for
from ..request import OpParams, Sampling
from .clips import SceneEvidence, programme, segment_clips
from .drive import SMALL
from .evidence import Seen, merge, shot_evidence, spread, thin_keep, tokens
from .scenes import ShotFeatures, group_scenes, shot_histograms
from .features import Frame as Features, distance, frame_features
from .shots import Boundary, Params, Shot, ShotDetector, refine_cut, shots_from, smpte
from .text import Evidence, TextWriter, write_text

log = logging.getLogger("argus.abstract")

LAYERS = (0, 1, 2, 3)
DEFAULT_LAYERS = (0, 1, 2)
VIDEO_TYPES = ("news", "tv_play", "tv_show", "general")
#: the seed's media limits: at least 30×30, at most 6 h
MIN_SIDE = 30
MAX_DURATION_S = 6 * 3600.0


# -- errors (the seed's codes) -------------------------------------------------------------------------
class AbstractError(ArgusError):
    """An abstract that ended in ERROR: ``code`` and ``message`` as the seed's error table."""

    status = 500
    code = "InternalError"
    message = "service internal error, please retry"

    def __init__(self, message: str | None = None, *, detail: str = "", code: str | None = None) -> None:
        super().__init__(message, detail=detail)
        if code is not None:
            self.code = code

    def __reduce__(self):
        return (_rebuild_abstract, (type(self), self.message, self.detail, self.code))


def _rebuild_abstract(cls: type, message: str, detail: str, code: str) -> "AbstractError":
    return cls(message, detail=detail, code=code)


class InvalidMedia(AbstractError):
    status = 400
    code = "InvalidMedia"
    message = "get media info failure"


LIMIT_EXCEEDED = "media duration/resolution exceeds limit"
NO_VIDEO = "invalid audio or video"


class TimeOut(AbstractError):
    status = 504
    code = "TimeOut"
    message = "analyze time out, please retry"


def as_abstract_error(exc: BaseException) -> AbstractError | Cancelled:
    """Any failure of an abstract → the seed's error (a cancellation stays a :class:`Cancelled`)."""
    if isinstance(exc, (AbstractError, Cancelled)):
        return exc
    if isinstance(exc, CannotOpen):
        no_video = "no video stream" in exc.detail or "no size" in exc.detail or "no decodable" in exc.detail
        return InvalidMedia(NO_VIDEO if no_video else None, detail=exc.detail)
    if isinstance(exc, VideoNotFound):
        return InvalidMedia(detail=exc.detail or exc.message)
    return AbstractError(detail=f"{type(exc).__name__}: {exc}")


def time_limit_s(duration_s: float | None) -> float:
    """The seed's TimeOut limit by duration: < 3 min → 15 min, < 10 min → 30 min, < 30 min → 1 h, else
    2 h + half the duration."""
    d = duration_s or 0.0
    if d < 180:
        return 900.0
    if d < 600:
        return 1800.0
    if d < 1800:
        return 3600.0
    return 7200.0 + d / 2


class Options(msgspec.Struct, frozen=True):
    """How to abstract. ``features`` False: shots only (no models, no op grid)."""

    layers: tuple[int, ...] = DEFAULT_LAYERS
    language: str = "zh"
    video_type: str = "general"
    enable_person_name: bool = False
    person_gallery: str | None = None
    tap_step_s: float = 0.1
    op_step_s: float = 0.4
    frames_per_shot: int = 3
    features: bool = True
    time_limit_s: float | None = None
    max_duration_s: float = MAX_DURATION_S
    buffer_cap: int = 24
    fast_decode: bool = True
    overlap: bool = True        #: run the models in a thread beside the decoder (see _ModelWorker)
    #: shots only: threads decoding chunks of a local file at once (:mod:`~argus_core.media.chunks`);
    #: 0 = one per core, at most the source's :meth:`~argus_core.media.source.Source.openings`
    decode_workers: int = 0


class Progress(msgspec.Struct, frozen=True):
    """An abstract's progress: ``percent`` 0–100 (never decreases), the media offset reached, shots closed."""

    percent: int
    offset_ms: int = 0
    shots: int = 0
    duration_ms: int = 0    #: the video's length once known (0: not known)


# -- the models, in this process ----------------------------------------------------------------------
class FeatureModels:
    """The ops an abstract runs on a shot's frames, loaded once per process (thread-safe ``see``).

    Built from :func:`argus_core.ops.create_op` (the same op classes, models and decoding as jobs); an op
    whose models are missing is left out (``unavailable`` says why) and its part of the evidence is empty."""

    def __init__(self, models_dir: str | Path | None = None, options: dict[str, Any] | None = None,
                 threads: int = 1) -> None:
        from ..faces.pipeline import DETECT_SPEC
        from ..ops import create_op
        from ..ops.faces import shared_pipeline
        from ..runtime.manifest import MODELS_DIR

        mdir = Path(models_dir) if models_dir else None
        self.options = dict(options or {})
        self.ops: dict[str, Any] = {}
        self.unavailable: dict[str, str] = {}
        self._lock = threading.Lock()
        for name in ("image_label", "detection", "ocr", "face_group_search"):
            try:
                op = create_op(name, mdir, self.options)
                op.load(threads=threads)
                self.ops[name] = op
            except Exception as exc:   # a missing model only removes its part of the evidence
                self.unavailable[name] = f"{type(exc).__name__}: {exc}"
        self.faces = None
        try:
            root = Path(mdir or os.environ.get("ARGUS_MODELS_DIR") or MODELS_DIR)
            self.faces = shared_pipeline(root, None, threads)
        except Exception as exc:
            self.unavailable["faces"] = f"{type(exc).__name__}: {exc}"
        self.detect_spec = DETECT_SPEC
        specs = [s for op in self.ops.values() for s in op.specs()]
        if self.faces is not None:
            specs.append(DETECT_SPEC)
        self.specs = unique_specs(specs)
        # What one shot needs (issue 11's budget: ≤ 0.1× the duration on 2 cores): the cheap 224-px
        # classifier on up to 3 frames, everything else on the keyframe only, each at the size that model
        # needs — faces at 640 px (FaceBoxes at 640 found the same faces as at 1024 on the constructed set,
        # 12 vs 28 ms), OCR's detector first at 480 px as a gate (see text_likely), the full 960-px OCR only
        # when it fires. Gallery search (enablePersonName) keeps its own renditions.
        self.tag_specs: tuple[FrameSpec, ...] = ()
        if "image_label" in self.ops:
            self.tag_specs = unique_specs(self.ops["image_label"].specs())
        key: list[FrameSpec] = list(self.tag_specs)
        if "detection" in self.ops:
            key += self.ops["detection"].specs()
        if self.faces is not None:
            key.append(FACE_SPEC)
        if "ocr" in self.ops:
            key += [OCR_GATE_SPEC, *self.ops["ocr"].specs()]
        if "face_group_search" in self.ops:
            key += self.ops["face_group_search"].specs()
        self.key_specs = unique_specs(key)
        self.embedder = _embedding_session(self.ops.get("image_label"), threads)
        self.gate_runs = self.gate_fired = 0

    def text_likely(self, view: np.ndarray) -> bool:
        """Whether OCR's own DB detector, run at :data:`OCR_GATE_SPEC` (480 px, ~1/4 of the 960-px cost),
        sees text-like pixels: at least :data:`GATE_MIN_PIXELS` of its probability map above the DB
        binarisation threshold (0.3). On 72 real frames of the 6 footage clips at 720p
        (``bench/eval_ocr_gate.py``: 36 with a line drawn in Pillow's default font, outlined, plain yellow
        or on a box) it passed 15 of the 18 Latin lines of 16–20 px (missed: two of 16 px, one of 20 px,
        plain yellow on busy backgrounds — small for a 720p caption) and all 18 of 26–34 px (there the font
        draws the CJK strings as digits and boxes), and 8 of the 36 textless frames (those pay the full OCR
        for nothing). True whenever the detector cannot be reached (OCR then runs as before)."""
        op = self.ops.get("ocr")
        det = getattr(getattr(op, "_engine", None), "text_det", None)
        if det is None:
            return True
        try:
            from rapidocr.ch_ppocr_det.utils import DetPreProcess

            bgr = np.ascontiguousarray(view[..., ::-1])
            pre = DetPreProcess(max(view.shape[:2]), "max", det.mean, det.std)(bgr)
            if pre is None:
                return True
            prob = np.asarray(det.session(pre))
            return int((prob > 0.3).sum()) >= GATE_MIN_PIXELS
        except Exception as exc:   # a rapidocr without these internals: no gate
            log.debug("OCR gate unavailable: %s", exc)
            return True

    def see_shot(self, tag_frames: Sequence[Frame], key: Frame, gallery: str | None = None,
                 halt: Callable[[], bool] = lambda: False) -> tuple[list[Seen], np.ndarray | None]:
        """One shot: ImageNet tags (and the 1280-D penultimate embedding) of ``tag_frames`` (up to 3, in
        one batch), COCO classes, faces/names and OCR of ``key`` (one of ``tag_frames``, by offset).
        Returns a :class:`Seen` per tag frame (the keyframe's carries the detectors' findings) and the
        mean embedding (None without the classifier). ``halt()`` is checked before each model."""
        n = len(tag_frames)
        tags: list[list[tuple[str, float]]] = [[] for _ in tag_frames]
        emb: np.ndarray | None = None
        objects: list[str] = []
        persons = faces = 0
        names: list[str] = []
        ocr: list[str] = []
        plain = OpParams()
        with self._lock:
            op = self.ops.get("image_label")
            if op is not None and n:
                if self.embedder is not None:
                    probs, vecs = self.embedder.run(tag_frames)
                    emb = vecs.mean(axis=0).astype(np.float16)
                    cuts = [op._cut(row, plain) for row in probs]
                else:
                    cuts = op.infer(tag_frames, [plain] * n)
                for i, cut in enumerate(cuts):
                    tags[i] = [(c["class"], float(c["score"])) for c in cut.result["confidences"]]
            op = self.ops.get("detection")
            if op is not None and not halt():
                dets = op.infer([key], [plain])[0].result["detections"]
                objects = list(dict.fromkeys(d["class"] for d in dets))
                persons = sum(1 for d in dets if d["class"] == "person")
            search = self.ops.get("face_group_search")
            if not halt():
                if gallery and search is not None:
                    cut = search.infer([key], [OpParams(other={"group": gallery})])[0]
                    faces = len((cut.result or {}).get("detections", []))
                    names = [lb.label for lb in cut.labels]
                elif self.faces is not None:
                    faces = len(self.faces.detect(key.views[FACE_SPEC]))
            op = self.ops.get("ocr")
            if op is not None and not halt():
                self.gate_runs += 1
                if self.text_likely(key.views[OCR_GATE_SPEC]) and not halt():
                    self.gate_fired += 1
                    ocr = [t["text"] for t in op.infer([key], [plain])[0].result["texts"]]
                _release_heap()
        seen = []
        for i, f in enumerate(tag_frames):
            if f.offset == key.offset:
                seen.append(Seen(f.offset, tags[i], objects, faces, names, ocr, persons))
            else:
                seen.append(Seen(f.offset, tags[i]))
        return seen, emb


def _libc_trim() -> Callable[[], Any] | None:
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):   # not glibc: nothing to trim
        return None


_TRIM = _libc_trim()


class _HeapTrim:
    """Gives the C heap's free pages back to the system when the process has grown by ``slack_mb`` since
    the last time. RapidOCR runs its sessions without onnxruntime's arena, so every run mallocs and frees
    its activations (tens of MB at 960 px, another size for every recogniser batch); glibc kept the freed
    pages, and the RSS of a 5-min 720p abstract climbed 575 → 1208 MB (without OCR it stayed at 470–487).
    ``malloc_trim(0)`` after every shot kept it at 490–611 MB but cost ~0.07× of the duration in page
    faults (every next run touches its pages afresh); trimming only past the slack bounds the RSS at
    the same cost as a few trims per video."""

    def __init__(self, slack_mb: float = 160.0) -> None:
        self.slack = slack_mb
        self.page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20 if hasattr(os, "sysconf") else 0.0
        self.next_mb: float | None = None
        self.trims = 0

    def rss_mb(self) -> float:
        try:
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * self.page_mb
        except (OSError, ValueError, IndexError):
            return 0.0

    def __call__(self) -> None:
        if _TRIM is None:
            return
        rss = self.rss_mb()
        if self.next_mb is None:
            self.next_mb = rss + self.slack
        elif rss > self.next_mb:
            _TRIM(0)
            self.trims += 1
            self.next_mb = self.rss_mb() + self.slack


_release_heap = _HeapTrim()


#: the renditions of a shot's keyframe that the abstract adds to the ops' own (see FeatureModels)
FACE_SPEC = FrameSpec(0, 0, "contain", 640)
OCR_GATE_SPEC = FrameSpec(0, 0, "stretch", 480)
#: pixels of the gate's DB probability map above 0.3 that make a frame worth the full OCR
GATE_MIN_PIXELS = 8


class _Embedder:
    """MobileNetV2 with its penultimate layer exposed: the issue's per-shot feature is the pooled 1280-D
    vector before the classifier, which the shipped graph does not output. The graph is edited in memory
    (the input of the final Gemm becomes a second output; ``models/mobilenetv2/model.onnx`` and its
    recorded check stay as they are) and run once per batch for both the ImageNet probabilities (the
    same softmax and top-k as ``image_label``) and the embeddings."""

    def __init__(self, op: Any, threads: int) -> None:
        import onnx

        from ..runtime.session import open_session

        model = op.model()
        self.model = model
        graph = onnx.load(str(model.folder / model.manifest.file))
        gemm = [n for n in graph.graph.node if n.op_type == "Gemm" and "logits" in n.output]
        if len(gemm) != 1:
            raise ValueError("no final Gemm producing 'logits'")
        self.feature_name = gemm[0].input[0]
        graph.graph.output.append(onnx.helper.make_tensor_value_info(self.feature_name, onnx.TensorProto.FLOAT,
                                                                     ["batch", 1280]))
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".onnx") as tmp:
            onnx.save(graph, tmp.name)
            self.session = open_session(Path(tmp.name), None, threads)
        self.spec = spec_of(model.manifest)
        self.w, self.h = model.manifest.input.width, model.manifest.input.height

    def run(self, frames: Sequence[Frame]) -> tuple[np.ndarray, np.ndarray]:
        from ..media.renditions import centre_crop
        from ..post.scores import softmax
        from ..runtime.manifest import to_tensor

        batch = np.stack([centre_crop(f.views[self.spec], self.w, self.h) for f in frames])
        logits, feats = self.session.run(["logits", self.feature_name],
                                         {self.model.input_name: to_tensor(batch, self.model.manifest.input)})
        return softmax(logits), feats.reshape(len(frames), -1)


def _embedding_session(op: Any, threads: int) -> _Embedder | None:
    if op is None:
        return None
    try:
        return _Embedder(op, threads)
    except Exception as exc:   # tags still come from the op; only the embedding is missing
        log.warning("MobileNetV2 embedding unavailable: %s", exc)
        return None


_SHARED: dict[tuple, FeatureModels] = {}
_SHARED_LOCK = threading.Lock()


def shared_models(models_dir: str | Path | None = None, options: dict[str, Any] | None = None,
                  threads: int = 1) -> FeatureModels:
    """One :class:`FeatureModels` per (models folder, options, threads) per process."""
    key = (str(models_dir or ""), msgspec.json.encode(options or {}), threads)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = FeatureModels(models_dir, options, threads)
        return _SHARED[key]


# -- the pass -------------------------------------------------------------------------------------------
class _Span(msgspec.Struct):
    """A provisional shot closed during the pass: its frames' evidence (the final shots are unions)."""

    start_ms: int
    end_ms: int
    seen: list[Seen] = []
    #: mean MobileNetV2 penultimate embedding of its tag frames (float16 [1280]; None without the model)
    embedding: Any = None


class _Pass:
    """State of the one decode pass: detector, frame buffer, closed spans."""

    def __init__(self, opts: Options, models: FeatureModels | None, source: Source, fps: float,
                 src_w: int, src_h: int, halt: Callable[[], bool], timeout: float) -> None:
        self.o, self.models, self.source, self.fps = opts, models, source, fps
        self.halt, self.timeout = halt, timeout
        self.params = Params()
        self.tap_ms = max(1, round(opts.tap_step_s * 1000))
        self.det = ShotDetector(self.tap_ms, self.params)
        self.dense: dict[int, list[tuple[int, np.ndarray]]] = {}   # candidate cut windows, by their end
        self.buffer: list[tuple[int, av.VideoFrame]] = []
        self.found: list[Boundary] = []
        self.spans: list[_Span] = []
        self.open_ms = 0
        self.recent_ms = 2 * (self.params.window_ms + self.params.flash_ms) + 4 * self.tap_ms
        have = models is not None and bool(models.key_specs)
        # two converters: the tag frames need only the classifier's 224 px, the keyframe every model's size
        self.tag_conv = Converter(models.tag_specs, src_w, src_h) if have and models.tag_specs else None
        self.key_conv = Converter(models.key_specs, src_w, src_h) if have else None
        self.gallery = opts.person_gallery if opts.enable_person_name else None
        self.refiner = _Refiner(source, fps, halt)
        self.worker = _ModelWorker(models, self.gallery, halt) if have and opts.overlap else None

    def tap_small(self, off: int, tapped: "Tapped") -> None:
        if tapped.dense is not None:
            self.dense[off] = tapped.dense
            for k in [k for k in self.dense if k < off - self.recent_ms]:   # long decided
                del self.dense[k]
        for b in self.det.feed(off, tapped.rgb, tapped.features):
            self.boundary(b)

    def op_frame(self, off: int, frame: av.VideoFrame) -> None:
        self.buffer.append((off, frame))
        if len(self.buffer) > self.o.buffer_cap:
            keep = thin_keep([o for o, _ in self.buffer], off, self.recent_ms, self.o.buffer_cap)
            self.buffer = [self.buffer[i] for i in keep]

    def boundary(self, b: Boundary) -> None:
        if b.window_ms:
            dense = self.dense.pop(b.window_ms[1], None)
            b = refine_cut(b, dense) if dense is not None else self.refiner.refine(b)
        self.found.append(b)
        if b.time_ms - self.open_ms >= self.params.min_shot_ms and b.time_ms >= self.params.min_shot_ms:
            self.close(b.time_ms)

    def close(self, end_ms: int) -> None:
        start = self.open_ms
        inside = [(o, f) for o, f in self.buffer if start <= o < end_ms]
        away = [(o, f) for o, f in inside if start + self.tap_ms <= o < end_ms - self.tap_ms]
        chosen = spread(away or inside, self.o.frames_per_shot)
        span = _Span(start, end_ms)
        if chosen and self.key_conv is not None and self.models is not None and not self.halt():
            # the keyframe: the middle one of the chosen frames (build_response reports the same offset)
            ko, kf = chosen[len(chosen) // 2]
            self.key_conv = self.key_conv.follow(kf)   # upright, as the op frames are (issue 9)
            key = Frame(ko, *self.key_conv.display, dict(zip(self.key_conv.specs, self.key_conv.convert(kf))))
            tag_frames = []
            for o, f in chosen:
                if o == ko or self.tag_conv is None:
                    tag_frames.append(key)
                    continue
                self.tag_conv = self.tag_conv.follow(f)
                tag_frames.append(Frame(o, *self.tag_conv.display,
                                        dict(zip(self.tag_conv.specs, self.tag_conv.convert(f)))))
            # only converted pixels go on: the decoded frames are released here, whatever the models' pace
            if self.worker is not None:
                self.worker.submit(span, tag_frames, key)
            else:
                span.seen, span.embedding = self.models.see_shot(tag_frames, key, self.gallery, self.halt)
        self.spans.append(span)
        self.buffer = [(o, f) for o, f in self.buffer if o >= end_ms]
        self.open_ms = end_ms

    def finish(self, end_ms: int) -> None:
        for b in self.det.finish(end_ms):
            self.boundary(b)
        if end_ms > self.open_ms:
            self.close(end_ms)
        self.buffer.clear()
        self.refiner.close()
        if self.worker is not None:
            self.worker.join()

    def abandon(self) -> None:
        """Stop the model worker without waiting for its queue (an error or a stop ended the pass)."""
        if self.worker is not None:
            self.worker.join(abandon=True)


def small_rgb(scaler: VideoReformatter, frame: av.VideoFrame) -> np.ndarray:
    """The shot detector's 64×36 RGB copy of a frame, each pixel the mean of its 20×20 source block (swscale's
    AREA: a box filter for the 20× reduction; BILINEAR's triangle spans twice the block and costs 2.4× as
    much — 0.30 against 0.73 ms a 720p frame, measured on the ``gradual`` benchmark file)."""
    return scaler.reformat(frame, width=SMALL[0], height=SMALL[1], format="rgb24",
                           interpolation=Interpolation.AREA).to_ndarray()


#: at most this many decoded frames are held between two taps (a 100-ms tap of 25-fps video holds 2–3);
#: a window with more cannot be complete, and its cut is refined by decoding
HOLD_BETWEEN = 12


def consecutive(pts: Sequence[int], step: int) -> bool:
    """Whether frames at ``pts`` (increasing) follow one another with none between: each gap is one frame
    duration ``step`` (in time-base ticks; within a tick of rounding where a frame lasts more than one — in
    AVI, or MP4 with a time base of 1/fps, a frame is one tick and a gap of 2 is a skipped frame). Pure."""
    slack = min(1, step // 2)
    return step > 0 and len(pts) >= 2 and all(abs(b - a - step) <= slack for a, b in zip(pts, pts[1:]))


class Tapped(msgspec.Struct):
    """A tap frame as a decoding thread hands it to the shot detector: its 64×36 RGB copy, its features,
    and — where the picture jumped from the previous tap as much as a cut needs — the ``(offset_ms, rgb)``
    frames of that window, both taps included (None otherwise)."""

    rgb: Any
    features: Any
    dense: list[tuple[int, Any]] | None = None


class _Tapper:
    """The tap frames of one decoding thread, small, with their features; and for a window between two taps
    where the picture jumps at least a cut's threshold (:attr:`~.shots.Params.cut`: every window the detector
    may call a cut, and few others), every frame of it, so that the cut is put on its exact frame from frames
    this pass decoded anyway (:func:`~.shots.refine_cut`) instead of by seeking back and decoding its GOP
    again (46–100 ms of CPU a cut on the 720p benchmark files).

    Those are the frames the loop decoded between the taps (:data:`~argus_core.media.sampler.Observer`:
    reference frames, and non-reference ones some target showed). A window counts only when they follow
    one another with none skipped — a constant-rate stream, every gap one frame; otherwise its cut is
    refined by decoding, as before."""

    def __init__(self, clock: Clock, step_ticks: int, params: Params, hold: int = HOLD_BETWEEN) -> None:
        self.clock, self.step, self.p, self.hold = clock, step_ticks, params, hold
        self.scaler = VideoReformatter()   # one per thread: a scaler keeps state and is not shared
        self.held: list[av.VideoFrame] = []
        self.prev: tuple[int, int, np.ndarray, Features] | None = None   # pts, ms, rgb, features

    @staticmethod
    def for_video(video: Any, params: Params, tap_s: float) -> "_Tapper":
        st = video.stream
        rate, tb = st.average_rate, st.time_base
        # a declared constant rate only: in a variable-rate stream one frame's gap says nothing of the next
        step = round(1 / (rate * tb)) if rate and tb and st.base_rate == rate else 0
        # the frames between two taps and the one after: no more is ever of use (a decoded 4K frame is 12 MB)
        hold = min(HOLD_BETWEEN, math.ceil(tap_s * float(rate)) + 2) if step else 0
        return _Tapper(Clock(st), step, params, hold)

    def observe(self, t: float, frame: av.VideoFrame) -> None:
        if self.step and frame.pts is not None:
            self.held.append(frame)
            # before the first tap (a chunk's or a seek's pre-roll) only the last one can follow a tap
            if len(self.held) > (self.hold if self.prev is not None else 1):
                del self.held[0]

    def __call__(self, sample: Sample) -> Tapped:
        f = sample.frame
        rgb = small_rgb(self.scaler, f)
        feats = frame_features(rgb, self.p.black_luma)
        at = ms(self.clock.seconds(f))   # the frame's own time: its grid point may lie a hair after it
        dense = None
        p = self.prev
        if p is not None and f.pts is not None and f.pts > p[0] and distance(p[3], feats) >= self.p.cut:
            between = [h for h in self.held if p[0] < h.pts < f.pts]
            if consecutive([p[0], *(h.pts for h in between), f.pts], self.step):
                dense = [(p[1], p[2]), *((ms(self.clock.seconds(h)), small_rgb(self.scaler, h)) for h in between),
                         (at, rgb)]
        self.held = [h for h in self.held if f.pts is not None and h.pts > f.pts]   # the next window's
        self.prev = (f.pts, at, rgb, feats) if f.pts is not None else None
        return Tapped(rgb, feats, dense)


def decode_workers(opts: Options, source: Source, use_models: bool) -> int:
    """Chunk decoders for this pass: with the models, one (the models' thread has the other core)."""
    if use_models:
        return 1
    want = opts.decode_workers or (os.cpu_count() or 1)
    return max(1, min(want, source.openings()))


class _ModelWorker:
    """Runs the shots' models in one thread beside the decode loop, so that decoding (PyAV releases the
    GIL) and inference (onnxruntime does too) overlap on a 2-core machine instead of taking turns. The
    queue holds at most ``depth`` shots of converted renditions (a few MB): memory stays flat, and the
    decoder waits when the models fall behind."""

    def __init__(self, models: FeatureModels, gallery: str | None, halt: Callable[[], bool], depth: int = 2) -> None:
        import queue

        self.models, self.gallery, self.halt = models, gallery, halt
        self.q: "queue.Queue[tuple[_Span, list[Frame], Frame] | None]" = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.abandoned = False
        self.thread = threading.Thread(target=self._loop, name="abstract-models", daemon=True)
        self.thread.start()

    def submit(self, span: _Span, tag_frames: list[Frame], key: Frame) -> None:
        if self.error is not None:
            raise self.error
        self.q.put((span, tag_frames, key))

    def _loop(self) -> None:
        while True:
            item = self.q.get()
            if item is None:
                return
            if self.error is not None or self.abandoned or self.halt():
                continue
            span, tag_frames, key = item
            try:
                span.seen, span.embedding = self.models.see_shot(tag_frames, key, self.gallery, self.halt)
            except BaseException as exc:   # raised in the decode thread at the next submit or at join
                self.error = exc

    def join(self, abandon: bool = False) -> None:
        if abandon:
            self.abandoned = True
        self.q.put(None)
        self.thread.join()
        if self.error is not None and not abandon:
            raise self.error


class _Refiner:
    """Cuts whose window the pass did not decode whole (:class:`_Tapper`: a skipped non-reference frame, a
    variable frame rate, the first window of a chunk) moved to their exact frame (as :func:`~.drive.refine_in`
    does: the frames of the cut's window at the frame interval, read at their own pts — from the stream's
    start, MPEG-TS starts near 1.4 s — into :func:`~.shots.refine_cut`), over ONE second opening of
    the source kept for the whole pass (no re-open and re-probe per cut; one connection for a URL), decoded
    without the loop filter: only 64×36 copies are made of these frames, and which frame is shown when does
    not depend on deblocking."""

    def __init__(self, source: Source, fps: float, halt: Callable[[], bool]) -> None:
        self.source, self.fps, self.halt = source, fps, halt
        self.video: Any = None
        self.used = False
        self.small = VideoReformatter()

    def refine(self, b: Boundary) -> Boundary:
        assert b.window_ms is not None
        try:
            if self.video is None:
                self.video = self.source.open()
                fast_decode(self.video)
            lo, hi = b.window_ms
            interval = 1.0 / self.fps
            ss = max(0.0, lo / 1000.0 - interval)   # one frame early, as refine_in (see there)
            if ss <= 0.0 and self.used:
                # a window at 0 s plans no seek (the cursor starts there): start from a fresh opening
                self.close()
                return self.refine(b)
            self.used = True
            win = Sampling(mode=0, interval=interval, ss=ss, t=hi / 1000.0 - ss + interval / 2)
            clock = Clock(self.video.stream)   # the frames' own times, from the stream's start
            frames = [(ms(clock.seconds(s.frame)), small_rgb(self.small, s.frame))
                      for s in sample_frames(self.video, win, self.halt, frame_threads=False)]
            return refine_cut(b, frames)
        except (ArgusError, av.error.FFmpegError) as exc:   # unrefined beats failing the abstract
            log.warning("cut refinement failed at %d ms: %s", b.time_ms, exc)
            return Boundary(b.type, b.time_ms, b.time_ms, b.time_ms, b.confidence, None)

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
            self.video = None
        self.used = False


def fast_decode(video: Any) -> None:
    """No H.264/HEVC loop filter. Shots only: nothing but 64×36 frames is made of this decode, and
    deblocking is invisible at that size. With the models too: they see ≤ 960-px copies of at most 3 frames
    a shot, where deblocking barely shows, and every frame of the stream is decoded for the shot detector
    (about 15 % of the decode)."""
    try:
        video.stream.codec_context.options = {**video.stream.codec_context.options, "skip_loop_filter": "all"}
    except Exception:   # a decoder without the option: decode as usual
        pass


def _rate(video: Any) -> float:
    st = video.stream
    r = st.average_rate or st.guessed_rate or 25
    return float(r) if float(r) > 0 else 25.0


def analyse(source: str | Source, opts: Options = Options(), *, models: FeatureModels | None = None,
            progress: Callable[[Progress], None] | None = None, stop: Callable[[], bool] | None = None,
            timeout: float = 30.0, source_options: dict[str, str] | None = None) -> "Analysis":
    """Shots, their evidence and their colour histograms from one decode pass of ``source``."""
    stop = stop or (lambda: False)
    src = source if not isinstance(source, str) else source_for(source, timeout, source_options)
    t0 = time.monotonic()
    try:
        video = src.open()
    except BaseException as exc:
        raise as_abstract_error(exc) from None
    with video:
        if video.width < MIN_SIDE or video.height < MIN_SIDE:
            raise InvalidMedia(LIMIT_EXCEEDED, detail=f"{video.width}x{video.height} is below {MIN_SIDE}x{MIN_SIDE}")
        duration = video.duration
        if duration is not None and duration > opts.max_duration_s:
            raise InvalidMedia(LIMIT_EXCEEDED, detail=f"{duration:.0f} s is over {opts.max_duration_s:.0f} s")
        limit = opts.time_limit_s if opts.time_limit_s is not None else time_limit_s(duration)
        timed_out = [False]

        def halt() -> bool:
            if time.monotonic() - t0 > limit:
                timed_out[0] = True
            return timed_out[0] or stop()

        fps = _rate(video)
        use_models = opts.features and models is not None
        if opts.fast_decode:
            fast_decode(video)
        st = _Pass(opts, models if use_models else None, src, fps, video.width, video.height, halt, timeout)
        tap = Sampling(mode=0, interval=opts.tap_step_s, ss=0.0, t=None)
        grid = Sampling(mode=0, interval=opts.op_step_s, ss=0.0, t=None) if use_models else tap
        dur_ms = int(round(duration * 1000)) if duration else 0
        try:
            return _run_pass(st, video, src, opts, grid, tap, use_models, halt, stop, timed_out, limit, dur_ms,
                             fps, progress)
        finally:
            st.refiner.close()
            st.abandon()


def _run_pass(st: "_Pass", video: Any, src: Source, opts: Options, grid: Sampling, tap: Sampling,
              use_models: bool, halt: Callable[[], bool], stop: Callable[[], bool], timed_out: list[bool],
              limit: float, dur_ms: int, fps: float, progress: Callable[[Progress], None] | None) -> "Analysis":
    """The decode loop of :func:`analyse` and the shots it closes."""
    last, pct, n = 0, 0, 0
    if progress is not None:
        progress(Progress(0, 0, 0, dur_ms))
    chunked = decode_workers(opts, src, use_models)
    # shots only on several cores: the tap frames only, made small in the decoding threads
    def tapper() -> _Tapper:
        return _Tapper.for_video(video, st.params, tap.interval)

    one = tapper()
    samples: Any = (parallel_frames(src, video, tap, tapper, halt, chunked,
                                    fast_decode if opts.fast_decode else lambda v: None) if chunked > 1
                    else sample_frames(video, grid, halt, reopen=src.open, tap=tap if use_models else None,
                                       observe=one.observe))
    try:
        for s in samples:
            n += 1
            if chunked > 1:
                last = s[0]
                st.tap_small(*s)
            else:
                if s.wanted & TAP or not use_models:
                    st.tap_small(s.offset_ms, one(s))
                if use_models and s.wanted & 1:
                    st.op_frame(s.offset_ms, s.frame)
                last = s.offset_ms
            if progress is not None and dur_ms:
                p = min(95, int(95 * last / dur_ms))
                if p > pct:
                    pct = p
                    progress(Progress(pct, last, len(st.spans), dur_ms))
    except ArgusError as exc:
        raise as_abstract_error(exc) from None
    except av.error.FFmpegError as exc:
        if n == 0:
            raise as_abstract_error(map_av_error(exc)) from None
        log.warning("stream ended with an error after %d frames: %s", n, exc)
    finally:
        samples.close()   # decoding threads stop here, not whenever an exception's traceback is let go
    if timed_out[0]:
        raise TimeOut(detail=f"over {limit:.0f} s")
    if stop():
        raise Cancelled()
    if n == 0:
        raise InvalidMedia(NO_VIDEO, detail="no decodable frame")
    end_ms = dur_ms or last + st.tap_ms
    st.finish(end_ms)
    if timed_out[0]:
        raise TimeOut(detail=f"over {limit:.0f} s")
    if stop():
        raise Cancelled()
    shots = shots_from(st.found, end_ms, 1000.0 / fps, st.params.min_shot_ms)
    starts = {s.start_ms for s in shots}
    found = [b for b in st.found if b.time_ms in starts]
    return Analysis(end_ms, fps, shots, found, st.spans, st.det.cues, st.det.sample_ms,
                    [h.astype(np.float32).tolist() for h in st.det.histograms])


class Analysis(msgspec.Struct):
    """What the pass produced, before grouping and writing."""

    duration_ms: int
    fps: float
    shots: list[Shot]
    boundaries: list[Boundary]
    spans: list[_Span]
    cues: list[Any]
    sample_ms: list[int]
    histograms: list[list[float]]


# -- grouping and writing (pure) ------------------------------------------------------------------------
def _shot_parts(a: Analysis) -> list[tuple[list[Seen], list[Any]]]:
    """Per final shot: the seen frames and embeddings of the provisional spans inside it (spans and shots
    are both in time order: one forward sweep)."""
    out = []
    j = 0
    for s in a.shots:
        while j < len(a.spans) and a.spans[j].end_ms <= s.start_ms:
            j += 1
        seen: list[Seen] = []
        embs: list[Any] = []
        k = j
        while k < len(a.spans) and a.spans[k].start_ms < s.end_ms:
            sp = a.spans[k]
            if sp.end_ms > s.start_ms:
                seen += [x for x in sp.seen if s.start_ms <= x.offset_ms < s.end_ms]
                if sp.embedding is not None:
                    embs.append(sp.embedding)
            k += 1
        out.append((seen, embs))
    return out


def shot_embeddings(a: Analysis) -> list[list[float] | None]:
    """Per final shot: the MobileNetV2 penultimate embedding (1280-D, mean over its tag frames), None for
    a shot no model saw."""
    return [np.mean(np.asarray(e, np.float32), axis=0).tolist() if e else None for _, e in _shot_parts(a)]


CUE_NAMES = {"black": ("black_frames", "黑场", "black frames"), "bars": ("color_bars", "彩条", "colour bars")}


def build_response(a: Analysis, task_id: str, opts: Options, writer: TextWriter | None = None,
                   trace: list[tuple[str, Evidence]] | None = None) -> dict[str, Any]:
    """The §12 GET response body (without the service's times/status fields) from an :class:`Analysis`;
    ``trace`` receives ``(contentId, Evidence)`` of every item written (what each text was built from)."""
    lang = "en" if opts.language == "en" else "zh"
    parts = _shot_parts(a)
    shot_ev = [shot_evidence(s.end_ms - s.start_ms, seen) for s, (seen, _) in zip(a.shots, parts)]
    keyframes = []
    for s, (seen, _) in zip(a.shots, parts):
        keyframes.append(seen[len(seen) // 2].offset_ms if seen else (s.start_ms + s.end_ms) // 2)
    hists = shot_histograms(a.sample_ms, a.histograms, [(s.start_ms, s.end_ms) for s in a.shots]) \
        if len(a.sample_ms) and a.shots else [[] for _ in a.shots]
    feats = [ShotFeatures(s.start_ms, s.end_ms, h) for s, h in zip(a.shots, hists)]
    scenes = group_scenes(feats)
    scene_ev = [merge(sc.end_ms - sc.start_ms, shot_ev[sc.first_shot:sc.last_shot + 1]) for sc in scenes]
    scene_hist = [np.mean(hists[sc.first_shot:sc.last_shot + 1], axis=0).tolist() if hists and len(hists[0]) else []
                  for sc in scenes]
    clips = segment_clips([SceneEvidence(sc.start_ms, sc.end_ms, tokens(e), h)
                           for sc, e, h in zip(scenes, scene_ev, scene_hist)])
    clip_ev = [merge(c.end_ms - c.start_ms, scene_ev[c.first_scene:c.last_scene + 1]) for c in clips]
    prog = programme(a.duration_ms)
    prog_ev = merge(a.duration_ms, clip_ev)
    layers = set(opts.layers)
    out: list[dict[str, Any]] = []

    def item(level: int, index: int, start: int, end: int, ev: Evidence) -> dict[str, Any]:
        if trace is not None:
            trace.append((f"{task_id}_{level}_{index}", ev))
        return {"contentId": f"{task_id}_{level}_{index}", "level": level, "startTimeInMS": int(start),
                "endTimeInMS": int(end), "clipAbstract": write_text(ev, lang, writer)}

    if 0 in layers:
        out.append(item(0, 0, prog.start_ms, prog.end_ms, prog_ev))
    if 1 in layers:
        out += [item(1, c.index, c.start_ms, c.end_ms, e) for c, e in zip(clips, clip_ev)]
    if 2 in layers:
        for sc, e in zip(scenes, scene_ev):
            d = item(2, sc.index, sc.start_ms, sc.end_ms, e)
            longest = max(range(sc.first_shot, sc.last_shot + 1), key=lambda k: a.shots[k].end_ms - a.shots[k].start_ms)
            d["keyframeInMS"] = keyframes[longest]
            d["shots"] = sc.last_shot - sc.first_shot + 1
            out.append(d)
    if 3 in layers:
        for s, e, kf in zip(a.shots, shot_ev, keyframes):
            d = item(3, s.index, s.start_ms, s.end_ms, e)
            d.update(confidence=s.confidence, startFrame=s.start_frame, endFrame=s.end_frame,
                     startTimecode=smpte(s.start_ms, a.fps), endTimecode=smpte(s.end_ms, a.fps),
                     transition=s.type, keyframeInMS=kf)
            out.append(d)
        for i, c in enumerate(a.cues):
            kind, zh, en = CUE_NAMES.get(c.type, (c.type, c.type, c.type))
            secs = max(1, round((c.end_ms - c.start_ms) / 1000))
            text = f"{en}, {secs} seconds" if lang == "en" else f"{zh}，{secs}秒"
            out.append({"contentId": f"{task_id}_3_cue{i}", "level": 3, "type": kind,
                        "startTimeInMS": c.start_ms, "endTimeInMS": c.end_ms, "clipAbstract": text,
                        "startTimecode": smpte(c.start_ms, a.fps), "endTimecode": smpte(c.end_ms, a.fps)})
    return {"taskId": task_id, "durationInSecond": round(a.duration_ms / 1000), "language": lang,
            "videoType": opts.video_type, "clipResults": out}


def abstract(source: str | Source, task_id: str, opts: Options = Options(), *,
             models: FeatureModels | None = None, progress: Callable[[Progress], None] | None = None,
             stop: Callable[[], bool] | None = None, timeout: float = 30.0,
             source_options: dict[str, str] | None = None, writer: TextWriter | None = None) -> dict[str, Any]:
    """:func:`analyse` then :func:`build_response`; ``progress`` ends with 100."""
    a = analyse(source, opts, models=models, progress=progress, stop=stop, timeout=timeout,
                source_options=source_options)
    try:
        body = build_response(a, task_id, opts, writer)
    except Exception as exc:
        raise as_abstract_error(exc) from None
    if progress is not None:
        progress(Progress(100, a.duration_ms, len(a.shots), a.duration_ms))
    return body


def parse_layers(value: Any) -> tuple[int, ...]:
    """``enableAbstractLayers`` (a list of 0..3, or a comma string for the CLI) → sorted tuple; raises
    ValueError on anything else."""
    if value is None:
        return DEFAULT_LAYERS
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not value:
        raise ValueError("enableAbstractLayers must be a non-empty list of 0..3")
    out = set()
    for v in value:
        if isinstance(v, bool):
            raise ValueError("enableAbstractLayers must be a non-empty list of 0..3")
        try:
            k = int(v)
        except (TypeError, ValueError):
            raise ValueError("enableAbstractLayers must be a non-empty list of 0..3") from None
        if k not in LAYERS or (not isinstance(v, str) and k != v):
            raise ValueError("enableAbstractLayers must be a non-empty list of 0..3")
        out.add(k)
    return tuple(sorted(out))


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def get_response(source: str, task_id: str, opts: Options = Options(), *,
                 models: FeatureModels | None = None, progress: Callable[[Progress], None] | None = None,
                 stop: Callable[[], bool] | None = None, timeout: float = 30.0,
                 source_options: dict[str, str] | None = None, writer: TextWriter | None = None) -> dict[str, Any]:
    """The whole §12 GET response of a finished abstract run here and now (the CLI's and
    ``Engine.abstract``'s answer): status FINISHED, percent 100, the times, and :func:`abstract`'s body."""
    created = time.time()
    body = abstract(source, task_id, opts, models=models, progress=progress, stop=stop, timeout=timeout,
                    source_options=source_options, writer=writer)
    done = time.time()
    return {"taskId": task_id, "source": source, "status": "FINISHED", "percent": 100,
            "videoType": opts.video_type, "durationInSecond": body["durationInSecond"],
            "createTime": rfc3339(created), "startTime": rfc3339(created), "publishTime": rfc3339(done),
            "language": body["language"], "clipResults": body["clipResults"]}
