"""Which file of a model runs: the fp reference or its int8 version (``models/<name>_int8/``), and the
measures that decide it.

``models/quantize.py`` writes an int8 model with a ``quantized`` manifest section: the measured agreement
with the fp model on real footage, the speed-up, and ``chosen`` — :func:`choose`'s verdict on those
measurements. Operators pick with the option ``precision`` (``Engine(options=...)``, ``argus serve``
settings): ``"auto"`` (default), ``"int8"`` or ``"fp32"``, or a mapping ``{model folder: mode}``; also
``ARGUS_PRECISION``. ``auto`` runs the int8 file only where it was chosen by measurement, was made from the
very fp file installed (its sha256), and the models run on the CPU provider; otherwise the fp model runs.
An int8 file that fails its own check under ``auto`` falls back to fp (logged); under ``int8`` the op
refuses (``bad op``), as for any model.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import numpy as np

from .manifest import ModelError, load_manifest

log = logging.getLogger("argus.precision")

Mode = Literal["auto", "int8", "fp32"]
MODES = ("auto", "int8", "fp32")
INT8_SUFFIX = "_int8"
#: agreement bars (issue 14): classifiers' top-1 agreement, detection recall within 1 point
MIN_TOP1_AGREEMENT = 0.99
MIN_DETECTION_RECALL = 0.99
#: and a detector's boxes at the op's thresholds must agree too: nanodet_int8 kept 100 % of the confident boxes
#: at F1 0.94, and those near-threshold flips added false persons on static vtest objects (0 → 0.34 per frame),
#: lost a stock photo's cup and broke the orientation test's one-box bound — answers, not just speed, changed
MIN_DETECTION_F1 = 0.95
#: int8 must pay for itself: at least this speed-up in CPU time at batch 8
MIN_SPEEDUP = 1.15
#: int8 outputs move by a quantization step between CPU kernel families (AVX2 / AVX-512 VNNI / ARM):
#: their recorded check is verified with this tolerance (fp32 models: 2e-3)
INT8_CHECK_ATOL = 0.03


def int8_folder_name(name: str) -> str:
    return name + INT8_SUFFIX


def mode_for(model: str, options: Mapping[str, Any] | None) -> Mode:
    """The precision mode asked for ``model`` by the operator option / ``ARGUS_PRECISION``."""
    value: Any = (options or {}).get("precision") or os.environ.get("ARGUS_PRECISION") or "auto"
    if isinstance(value, Mapping):
        value = value.get(model, value.get("default", "auto"))
    value = str(value).lower()
    if value not in MODES:
        raise ValueError(f"precision {value!r} for {model}: one of {', '.join(MODES)}")
    return value  # type: ignore[return-value]


def on_cpu(providers: Sequence[Any] | None) -> bool:
    names = [p[0] if isinstance(p, (tuple, list)) else p for p in (providers or ["CPUExecutionProvider"])]
    return names[0] == "CPUExecutionProvider"


def int8_status(models_dir: Path, model: str) -> str:
    """'' when ``models/<model>_int8`` exists, was chosen by measurement and was made from the installed
    fp file; else why not."""
    from .manifest import file_sha256, model_path

    folder = Path(models_dir) / int8_folder_name(model)
    if not (folder / "manifest.json").is_file():
        return "no int8 model (models/quantize.py)"
    try:
        man = load_manifest(folder)
        ref = load_manifest(Path(models_dir) / model)
        q = man.quantized
        if not q:
            return "int8 manifest has no quantized section"
        if not q.get("chosen"):
            return "int8 not chosen by measurement"
        want = q.get("reference_sha256", "")
        if want and want != (ref.sha256 or file_sha256(model_path(Path(models_dir) / model, ref))):
            return "int8 model was made from another fp file"
    except ModelError as exc:
        return str(exc)
    return ""


def pick_folder(models_dir: Path, model: str, options: Mapping[str, Any] | None,
                providers: Sequence[Any] | None = None) -> tuple[Path, Path | None]:
    """``(folder to load, fallback folder or None)`` for ``model`` under the precision mode asked for."""
    fp = Path(models_dir) / model
    mode = mode_for(model, options)
    if mode == "fp32":
        return fp, None
    int8 = Path(models_dir) / int8_folder_name(model)
    if mode == "int8":
        if not (int8 / "manifest.json").is_file():
            raise ModelError(f"{model}: precision int8 asked for, but {int8} is missing (run models/quantize.py)")
        return int8, None
    if on_cpu(providers) and not int8_status(models_dir, model):
        return int8, fp
    return fp, None


# -- measures (used by models/quantize.py and bench/bench_int8.py) -----------------------------------------
def top1_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of rows whose arg-max class is the same in ``a`` and ``b`` (``[N, C]``)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"shapes {a.shape} and {b.shape}: need the same [N, C]")
    if len(a) == 0:
        return 1.0
    return round(float(np.mean(a.argmax(axis=1) == b.argmax(axis=1))), 4)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


Box = tuple[int, Sequence[float]]  # (class index, (x1, y1, x2, y2))


def _matched(ref: Sequence[Box], got: Sequence[Box], min_iou: float) -> int:
    """How many reference boxes find a distinct same-class box in ``got`` with IoU ≥ ``min_iou``
    (greedy, best IoU first)."""
    pairs = sorted(((iou(r[1], g[1]), i, j) for i, r in enumerate(ref) for j, g in enumerate(got)
                    if r[0] == g[0]), reverse=True)
    used_r: set[int] = set()
    used_g: set[int] = set()
    for v, i, j in pairs:
        if v < min_iou:
            break
        if i not in used_r and j not in used_g:
            used_r.add(i)
            used_g.add(j)
    return len(used_r)


def detection_recall(ref: Sequence[Sequence[Box]], got: Sequence[Sequence[Box]], min_iou: float = 0.5) -> float:
    """Per-frame lists of boxes: share of the reference boxes found in ``got`` (1.0 when there are none)."""
    total = sum(len(r) for r in ref)
    hit = sum(_matched(r, g, min_iou) for r, g in zip(ref, got))
    return round(hit / total, 4) if total else 1.0


def detection_f1(ref: Sequence[Sequence[Box]], got: Sequence[Sequence[Box]], min_iou: float = 0.5) -> float:
    """F1 of ``got`` against ``ref`` (the same matching as :func:`detection_recall`)."""
    hit = sum(_matched(r, g, min_iou) for r, g in zip(ref, got))
    n_ref, n_got = sum(map(len, ref)), sum(map(len, got))
    if n_ref + n_got == 0:
        return 1.0
    return round(2 * hit / (n_ref + n_got), 4)


def choose(kind: str, agreement: Mapping[str, float], speedup: float) -> bool:
    """int8 or not, from the measurements: the agreement bar of the model's kind, and a real speed-up."""
    if speedup < MIN_SPEEDUP:
        return False
    if kind == "classifier":
        return agreement.get("top1_agreement", 0.0) >= MIN_TOP1_AGREEMENT
    if kind == "detector":
        return (agreement.get("confident_recall", 0.0) >= MIN_DETECTION_RECALL
                and agreement.get("f1_at_threshold", 0.0) >= MIN_DETECTION_F1)
    return False  # no agreement measure for this kind: keep the fp model
