"""What the models saw, per frame → per shot → per scene/clip/programme (issue 11, CONTRACT §12). Pure.

A :class:`Seen` is one frame's model outputs reduced to what a text may say (ImageNet tags with scores, COCO
classes, a face count, gallery names, OCR lines). :func:`shot_evidence` folds the (up to 3) frames of a shot
into a :class:`~argus_core.abstract.text.Evidence`; :func:`merge` folds shots into a scene, scenes into a clip,
clips into the programme. :func:`thin_keep` is the bounded frame buffer's rule (memory flat in the length).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Sequence, TypeVar

import msgspec

from .text import Evidence

T = TypeVar("T")


class Seen(msgspec.Struct, frozen=True):
    """One analysed frame: ``tags`` ImageNet (label, probability) best first; ``objects`` the COCO classes
    detected (each once); ``faces`` how many; ``persons`` COCO person boxes (people seen from afar or from
    behind show no face); ``names`` gallery matches; ``ocr`` text lines."""

    offset_ms: int
    tags: list[tuple[str, float]] = []
    objects: list[str] = []
    faces: int = 0
    names: list[str] = []
    ocr: list[str] = []
    persons: int = 0


def norm_text(s: str) -> str:
    """OCR line key: NFKC, case-folded, whitespace and punctuation removed (the same caption read twice
    with a different space or full-width comma is one line)."""
    s = unicodedata.normalize("NFKC", s).casefold()
    return "".join(ch for ch in s if ch.isalnum())


def dedup_lines(lines: Sequence[str], min_chars: int = 2) -> list[str]:
    """Lines in first-seen order, one per :func:`norm_text` key; a line contained in a longer one kept
    (the same caption half-read on one frame) goes; keys shorter than ``min_chars`` go (stray glyphs)."""
    out: list[tuple[str, str]] = []
    for line in lines:
        line = re.sub(r"\s+", " ", line).strip()
        k = norm_text(line)
        if len(k) < min_chars:
            continue
        if any(k in ok for ok, _ in out):
            continue
        out = [(ok, ol) for ok, ol in out if ok not in k]   # a longer reading replaces a partial one
        out.append((k, line))
    return [line for _, line in out]


def shot_evidence(duration_ms: int, frames: Sequence[Seen], max_tags: int = 5) -> Evidence:
    """One shot's evidence: tags by summed probability over its frames, each COCO class with the number
    of frames it was seen in, the most people in one frame (faces or person boxes, whichever is more),
    names and deduplicated OCR lines."""
    tag_score: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    names: list[str] = []
    ocr: list[str] = []
    people = 0
    for f in frames:
        for label, p in f.tags:
            tag_score[label] += p
        objects.update(set(f.objects))
        people = max(people, f.faces, f.persons)
        names += [n for n in f.names if n and n not in names]
        ocr += f.ocr
    tags = [t for t, _ in sorted(tag_score.items(), key=lambda kv: (-kv[1], kv[0]))][:max_tags]
    return Evidence(int(duration_ms), dict(objects), tags, people, names, dedup_lines(ocr), 1)


def merge(duration_ms: int, parts: Sequence[Evidence], max_tags: int = 5, max_ocr: int = 8) -> Evidence:
    """Evidence of a segment made of ``parts`` (shots of a scene, scenes of a clip, ...): object frame
    counts add up, tags ranked by how many parts carry them (then by their rank there), the most people
    any part saw, names and OCR lines united (deduplicated)."""
    objects: Counter[str] = Counter()
    votes: Counter[str] = Counter()
    rank: Counter[str] = Counter()
    names: list[str] = []
    ocr: list[str] = []
    people = shots = 0
    for e in parts:
        objects.update(e.objects)
        for i, t in enumerate(e.tags):
            votes[t] += 1
            rank[t] += i
        people = max(people, e.people)
        names += [n for n in e.names if n not in names]
        ocr += e.ocr
        shots += e.shots
    tags = sorted(votes, key=lambda t: (-votes[t], rank[t] / votes[t], t))[:max_tags]
    return Evidence(int(duration_ms), dict(objects), tags, people, names, dedup_lines(ocr)[:max_ocr], shots)


def tokens(e: Evidence) -> list[str]:
    """The bag of words clip segmentation compares scenes by (tags, classes, OCR keys, people)."""
    out = [f"tag:{t}" for t in e.tags] + [f"obj:{o}" for o in e.objects]
    out += [f"ocr:{norm_text(x)}" for x in e.ocr]
    out += [f"name:{n}" for n in e.names]
    if e.people:
        out.append(f"people:{min(e.people, 5)}")
    return out


def spread(items: Sequence[T], k: int) -> list[T]:
    """Up to ``k`` items evenly spread over ``items``, away from both ends when there is room (frames next
    to a boundary may still show the transition)."""
    n = len(items)
    if n <= k:
        return list(items)
    return [items[int((i + 0.5) * n / k)] for i in range(k)]


def thin_keep(offsets: Sequence[int], newest_ms: int, recent_ms: int, cap: int) -> list[int]:
    """Indexes of ``offsets`` (increasing) to keep when the buffer holds more than ``cap``: every frame
    newer than ``newest_ms - recent_ms`` (a boundary may still be decided there), every other one of the
    older ones. Called again as it refills, the old part thins geometrically: memory stays bounded."""
    if len(offsets) <= cap:
        return list(range(len(offsets)))
    old = [i for i, o in enumerate(offsets) if o < newest_ms - recent_ms]
    recent = [i for i, o in enumerate(offsets) if o >= newest_ms - recent_ms]
    return old[::2] + recent
