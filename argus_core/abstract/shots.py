"""Shot boundaries (abstract level 3) from small frames: an incremental, pure detector (issue 11, CONTRACT §12).

:class:`ShotDetector` is fed ``(offset_ms, rgb)`` small frames (e.g. 64×36) every ``step_ms`` and returns
:class:`Boundary` records as soon as they are decided (a fixed look-ahead of about ``window_ms``: memory stays
flat in the video length). No IO: the driver in :mod:`argus_core.abstract.drive` decodes.

How it decides (``d(i)`` = :func:`~argus_core.abstract.features.distance` of samples ``i-1`` and ``i``; the
*baseline* is the median ``d`` over ``±window_ms``, i.e. how much this stretch moves anyway):

- **cut** at sample ``i`` when ``d(i) ≥ cut`` and ``≥ ratio × baseline``, and every pair of frames across it
  (``i-1-F`` or ``i-1`` against ``i`` or ``i+F``, ``F`` samples ≈ ``flash_ms``) stays apart: a camera flash —
  a few bright frames between two alike — fails that test in both directions and yields nothing. The exact
  frame lies in ``(offset(i-1), offset(i)]``: :attr:`Boundary.window_ms` is what the driver refines with dense
  frames through :func:`refine_cut`.
- **gradual** over a run of consecutive elevated ``d`` (``≥ low`` and ``≥ ratio × baseline``, one quiet sample
  tolerated) no longer than ``max_gradual_ms``, when the frames before and after the run differ by
  ``≥ cut``. Its type comes from models fitted to the frames inside, relative to ``|after - before|``: through
  a dark frame → ``fade``; each pixel either the old or the new picture → ``wipe``; a per-frame mix
  ``(1-α)·before + α·after`` with ``α`` rising → ``dissolve``. Motion fits none of these (the residual stays
  large) and is not a boundary.

Technical cues (:class:`Cue`): runs of black frames (``black_luma`` 0..255, ``black_coverage`` 0..1, as
AWS Rekognition's MaxPixelThreshold/MinCoveragePercentage) and colour bars.
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import msgspec
import numpy as np

from .features import Frame, distance, frame_features

BOUNDARY_TYPES = ("cut", "fade", "dissolve", "wipe")


class Boundary(msgspec.Struct, frozen=True):
    """A shot boundary. ``time_ms``: the first frame of the new shot (a cut) or the transition's middle;
    ``start_ms``/``end_ms``: the last frame before and the first after it (== ``time_ms`` for a refined cut);
    ``window_ms``: where a cut's exact frame lies (empty once refined)."""

    type: str
    time_ms: int
    start_ms: int
    end_ms: int
    confidence: float
    window_ms: tuple[int, int] | None = None


class Cue(msgspec.Struct, frozen=True):
    """A technical cue: ``type`` ``black`` or ``bars``, over ``[start_ms, end_ms)``."""

    type: str
    start_ms: int
    end_ms: int


class Params(msgspec.Struct, frozen=True):
    cut: float = 0.12
    low: float = 0.03
    ratio: float = 3.0
    gradual_ratio: float = 2.0
    gradual_lag_ms: int = 200
    window_ms: int = 2500
    flash_ms: int = 250
    max_gradual_ms: int = 3000
    min_shot_ms: int = 400
    black_luma: float = 32.0
    black_coverage: float = 0.99
    fit_max: float = 0.55


def _safe_median(x: Sequence[float]) -> float:
    return float(np.median(np.asarray(x))) if len(x) else 0.0


def is_colour_bars(rgb: np.ndarray) -> bool:
    """SMPTE/EBU-style bars: the upper 60 % is made of vertical stripes (each column nearly constant top to
    bottom), at least 6 distinct stripes across, most of them saturated colours."""
    h, w = rgb.shape[:2]
    top = rgb[: max(1, int(h * 0.6))].astype(np.float32)
    if top.std(axis=0).mean() > 12.0:
        return False
    col = top.mean(axis=0)                                 # [w, 3]
    jumps = np.abs(np.diff(col, axis=0)).sum(axis=1) > 40.0
    stripes = 1 + int(np.count_nonzero(jumps[1:] & ~jumps[:-1]) + (1 if jumps[0] else 0))
    sat = col.max(axis=1) - col.min(axis=1)
    return stripes >= 6 and float((sat > 60).mean()) >= 0.5


class ShotDetector:
    """Incremental shot-boundary detector over small frames sampled every ``step_ms``.

    ``feed(offset_ms, rgb)`` returns the boundaries decided so far (in time order, each once);
    ``finish(end_ms)`` flushes the rest. Cuts carry :attr:`Boundary.window_ms`: replace them with
    :func:`refine_cut` over dense frames of that window (the driver does). ``cues`` and
    ``histograms`` (per sample, for scene grouping) accumulate as it goes."""

    def __init__(self, step_ms: int, params: Params | None = None) -> None:
        if step_ms <= 0:
            raise ValueError("step_ms must be > 0")
        self.step_ms = step_ms
        self.p = params or Params()
        self._w = max(3, math.ceil(self.p.window_ms / step_ms))
        self._f = max(1, math.ceil(self.p.flash_ms / step_ms))
        self._max_run = max(2, math.ceil(self.p.max_gradual_ms / step_ms))
        # gradual change is measured over ~gradual_lag_ms whatever the step (per-sample change at 40 ms is
        # noise-level, and a 1.5 s dissolve changes the picture less in 100 ms than a talking head does)
        self._lag = max(1, round(self.p.gradual_lag_ms / step_ms))
        self._dl: dict[int, float] = {}
        self._frames: dict[int, Frame] = {}
        self._t: dict[int, int] = {}
        self._d: dict[int, float] = {}
        self._n = 0            # samples fed
        self._next = 1         # first sample index not yet decided
        self._last_b: Boundary | None = None
        self.cues: list[Cue] = []
        self._cue_open: dict[str, int] = {}
        self.sample_ms: list[int] = []
        self.histograms: list[np.ndarray] = []

    # -- input ------------------------------------------------------------------------------------
    def feed(self, offset_ms: int, rgb: np.ndarray, features: Frame | None = None) -> list[Boundary]:
        """One tap frame; ``features``: its :func:`~.features.frame_features` (with this detector's
        ``black_luma``) where the caller made them already, in a decoding thread."""
        i = self._n
        if i and offset_ms <= self._t[i - 1]:
            raise ValueError("offsets must increase")
        f = features if features is not None else frame_features(rgb, self.p.black_luma)
        self._frames[i], self._t[i] = f, int(offset_ms)
        if i:
            self._d[i] = distance(self._frames[i - 1], f)
        if i >= self._lag:
            self._dl[i] = self._d[i] if self._lag == 1 else distance(self._frames[i - self._lag], f)
        self._n += 1
        self.sample_ms.append(int(offset_ms))
        self.histograms.append(f.hist.astype(np.float16))
        self._cue("black", f.dark >= self.p.black_coverage, offset_ms)
        self._cue("bars", is_colour_bars(rgb), offset_ms)
        out = self._scan(final=False)
        self._trim()
        return out

    def finish(self, end_ms: int | None = None) -> list[Boundary]:
        """Decide the remaining samples; ``end_ms`` (the video's end) closes open cues."""
        out = self._scan(final=True)
        end = end_ms if end_ms is not None else (self._t[self._n - 1] + self.step_ms if self._n else 0)
        for kind in list(self._cue_open):
            self._cue(kind, False, end)
        return out

    def _cue(self, kind: str, on: bool, t: int) -> None:
        if on and kind not in self._cue_open:
            self._cue_open[kind] = int(t)
        elif not on and kind in self._cue_open:
            self.cues.append(Cue(kind, self._cue_open.pop(kind), int(t)))

    def _trim(self) -> None:
        keep = self._next - 2 * self._w - self._f - 2
        for k in [k for k in self._frames if k < keep]:
            del self._frames[k]
            self._t.pop(k, None)
            self._d.pop(k, None)
            self._dl.pop(k, None)

    # -- decisions --------------------------------------------------------------------------------
    def _baseline(self, i: int, d: dict[int, float] | None = None) -> float:
        d = self._d if d is None else d
        lo, hi = max(1, i - self._w), min(self._n - 1, i + self._w)
        return _safe_median([d[k] for k in range(lo, hi + 1) if k != i and k in d])

    def _elevated(self, i: int) -> bool:
        """The picture changes faster than this stretch's baseline over the last ~100 ms."""
        d = self._dl.get(i, 0.0)
        return d >= self.p.low and d >= self.p.gradual_ratio * self._baseline(i, self._dl)

    def _in_run(self, k: int) -> bool:
        """Sample ``k`` continues a gradual run: elevated change (not a cut), or a black frame (the still
        middle of a fade through black)."""
        if any(self._is_cut(c) for c in range(k - self._lag + 1, k + 1)):
            return False
        return self._elevated(k) or self._frames[k].luma <= self.p.black_luma

    def _across(self, a: int, z: int) -> float:
        """The least distance between the frames before (``a``, ``a-F``) and after (``z``, ``z+F``) a change:
        small when the picture comes back within ``flash_ms``."""
        pres = [k for k in (a, a - self._f) if k in self._frames]
        posts = [k for k in (z, min(z + self._f, self._n - 1)) if k in self._frames]
        return min(distance(self._frames[x], self._frames[y]) for x in pres for y in posts)

    def _is_cut(self, i: int) -> float:
        """The cut's strength at sample ``i`` (0 when not a cut)."""
        d = self._d.get(i, 0.0)
        if d < self.p.cut or d < self.p.ratio * max(self._baseline(i), 0.01):
            return 0.0
        if max(self._d.get(i - 1, 0.0), self._d.get(i + 1, 0.0)) >= 0.35 * d:
            return 0.0      # the change goes on next door: part of a gradual transition
        across = self._across(i - 1, i)
        if across < 0.6 * self.p.cut or across < 0.4 * d:
            return 0.0      # the picture comes back: a flash, not a cut
        return across

    def _scan(self, final: bool) -> list[Boundary]:
        out: list[Boundary] = []
        need = self._w + self._f      # look-ahead a decision needs
        last = self._n - 1
        i = self._next
        while i <= last and (final or i + need <= last):
            strength = self._is_cut(i)
            if strength:
                b = Boundary("cut", self._t[i], self._t[i - 1], self._t[i], _conf(strength, self.p.cut),
                             (self._t[i - 1], self._t[i]))
                out += self._emit(b)
                i += self._lag      # lagged distances straddling the cut are not a gradual change
                continue
            if not self._elevated(i):
                i += 1
                continue
            j = i
            while j - i + 1 < self._max_run:
                if j + 1 <= last and self._in_run(j + 1):
                    j += 1
                elif j + 2 <= last and self._in_run(j + 2):
                    j += 2
                else:
                    break
            if not final and j + need > last:
                break                  # the run may go on: wait for more samples
            b = self._gradual(i, j)
            if b is not None:
                out += self._emit(b)
            i = j + 1
        self._next = i
        return out

    def _emit(self, b: Boundary) -> list[Boundary]:
        prev = self._last_b
        if prev is not None and b.start_ms - prev.end_ms < self.p.min_shot_ms:
            if b.confidence <= prev.confidence:
                return []
            # a stronger boundary right after: it cannot be retracted once returned, so both stand
        self._last_b = b
        return [b]

    def _gradual(self, i: int, j: int) -> Boundary | None:
        a, z = max(0, i - self._lag), j
        if a not in self._frames or z not in self._frames:
            return None
        A, B = self._frames[a], self._frames[z]
        total = distance(A, B)
        if total < self.p.cut or self._across(a, z) < 0.6 * self.p.cut:
            return None     # no lasting change (a flash seen from one side comes back)
        mids = [self._frames[k] for k in range(a + 1, j)]
        kind, fit = classify_transition(A, B, mids, self.p.black_luma)
        if kind is None or fit > self.p.fit_max:
            return None
        t0, t1 = self._t[a], self._t[z]
        if kind == "fade":
            k = min(range(a + 1, j + 1), key=lambda k: self._frames[k].luma)
            mid = self._t[k]
        else:
            mid = (t0 + t1) // 2
        conf = _conf(total, self.p.cut) * (1.0 - 0.5 * fit / self.p.fit_max)
        return Boundary(kind, mid, t0, t1, round(conf, 3))


def _conf(strength: float, threshold: float) -> float:
    """0.5 at the threshold, → 1 as the strength doubles it and beyond."""
    return round(min(1.0, 0.5 + 0.5 * (strength - threshold) / threshold), 3)


def classify_transition(A: Frame, B: Frame, mids: Sequence[Frame], black_luma: float = 32.0
                        ) -> tuple[str | None, float]:
    """(type, residual) of the frames ``mids`` between ``A`` and ``B``: ``fade`` when one passes through
    black, else the better of ``wipe`` (each pixel A or B) and ``dissolve`` (a mix with a rising weight);
    the residual is relative to ``|B - A|`` (0 perfect, ~1 no fit). No middle frame: (None, 1)."""
    if not mids:
        return None, 1.0
    darkest = min(m.luma for m in mids)
    if darkest <= max(black_luma, 0.35 * min(A.luma, B.luma)) and darkest < min(A.luma, B.luma) - 20:
        return "fade", 0.0
    a, b = A.small, B.small
    diff = b - a
    if float((np.abs(diff).sum(axis=2) > 30.0).mean()) < 0.5:
        return None, 1.0    # most of the picture is unchanged: something moved in front (tree.avi's hand)
    scale = float(np.abs(diff).mean()) + 1e-6
    res_d, res_w, alphas, fracs = [], [], [], []
    den = float((diff * diff).sum()) + 1e-6
    for m in mids:
        x = m.small
        al = min(1.0, max(0.0, float(((x - a) * diff).sum()) / den))
        alphas.append(al)
        res_d.append(float(np.abs(x - a - al * diff).mean()) / scale)
        ea, eb = np.abs(x - a).sum(axis=2), np.abs(x - b).sum(axis=2)
        res_w.append(float(np.minimum(ea, eb).mean()) / (3 * scale))
        fracs.append(float((eb < ea).mean()))
    rd, rw = float(np.mean(res_d)), float(np.mean(res_w))
    rising = all(y >= x - 0.15 for x, y in zip(alphas, alphas[1:]))
    if rw < rd and all(y >= x - 0.15 for x, y in zip(fracs, fracs[1:])):
        return "wipe", rw
    if rising:
        return "dissolve", rd
    return None, min(rd, rw)


def refine_cut(b: Boundary, frames: Iterable[tuple[int, np.ndarray]]) -> Boundary:
    """The cut ``b`` moved to the exact frame: ``frames`` are the dense ``(offset_ms, rgb)`` frames of
    ``b.window_ms`` (both ends included); the new shot starts at the frame after the largest jump.
    Fewer than two frames: ``b`` unchanged."""
    prev: Frame | None = None
    best, at = -1.0, None
    for t, rgb in frames:
        f = frame_features(rgb)
        if prev is not None:
            d = distance(prev, f)
            if d > best:
                best, at = d, t
        prev = f
    if at is None:
        return b
    return Boundary(b.type, int(at), int(at), int(at), b.confidence, None)


class Shot(msgspec.Struct, frozen=True):
    """One shot: ``[start_ms, end_ms)``, frames ``[start_frame, end_frame]`` at the video's frame rate, the
    boundary type that opens it (``start`` for the first) and a confidence (the weaker of its two ends)."""

    index: int
    start_ms: int
    end_ms: int
    start_frame: int
    end_frame: int
    confidence: float
    type: str


def shots_from(boundaries: Sequence[Boundary], duration_ms: int, frame_ms: float,
               min_shot_ms: int = 400) -> list[Shot]:
    """Shots covering ``[0, duration_ms)`` cut at each boundary's ``time_ms``. A boundary within
    ``min_shot_ms`` of either end (a black leader frame, a last flicker) opens no shot."""
    bs = sorted((b for b in boundaries if min_shot_ms <= b.time_ms <= duration_ms - min_shot_ms),
                key=lambda b: b.time_ms)
    edges = [0] + [b.time_ms for b in bs] + [int(duration_ms)]
    confs = [1.0] + [b.confidence for b in bs] + [1.0]
    types = ["start"] + [b.type for b in bs]
    out = []
    for k in range(len(edges) - 1):
        s, e = edges[k], edges[k + 1]
        if e <= s:
            continue
        sf = int(round(s / frame_ms))
        ef = max(sf, int(round(e / frame_ms)) - 1)
        out.append(Shot(len(out), s, e, sf, ef, round(min(confs[k], confs[k + 1]), 3), types[k]))
    return out


def smpte(ms: int, fps: float) -> str:
    """Non-drop-frame SMPTE timecode ``HH:MM:SS:FF`` of ``ms`` at ``fps``."""
    fr = int(round(ms / 1000.0 * fps))
    base = max(1, int(round(fps)))
    ff, s = fr % base, fr // base
    return f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}"
