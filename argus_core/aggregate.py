"""Per-frame verdicts → labels and segments (CONTRACT §4 filter, §5 segments, §6 early termination).

Pure logic, no IO: the coordinator feeds cuts one by one in sampling order through :class:`OpAggregator`
(so it can stream segment events and stop decoding early); :func:`aggregate` is the same thing in one call,
public for users who run their own inference.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import msgspec

from .request import MAX_MIN_CUTS, MAX_SECONDS, MIN_INTERVAL_S, LabelSelect, OpParams, SegmentParams, clamp
from .result import Cut, CutIn, Label, OpResult, Segment

#: Default score floor of the *labels* of multi-label ops (issue 9): a class below it stays in the cut's
#: ``result`` but is not a label, so it neither names nor splits a segment (CONTRACT §5 applies to what is
#: left). Measured on the static vtest shot (80 cuts): detection 53 → 1 segment (best person ≥ 0.72 in every
#: cut; the parked vans flicker between car and truck below 0.7), image_label 70 → 3 (models/EVAL.md).
#: A request's explicit ``params.other.threshold`` replaces the floor.
LABEL_FLOOR = {"detection": 0.7, "image_label": 0.5}


def floor_labels(labels: list[Label], floor: float) -> list[Label]:
    """The labels at or above ``floor`` (pure)."""
    return [lab for lab in labels if lab.score >= floor]


SELECT_IGNORE = 1
SELECT_ONLY = 2


def filter_labels(labels: list[Label], entries: list[LabelSelect]) -> list[Label]:
    """CONTRACT §4: the labels of one cut that survive the op's ``params.labels`` entries."""
    only = [e for e in entries if e.select == SELECT_ONLY]
    if only:
        return [
            lab
            for lab in labels
            if any(e.label == lab.label and lab.score >= (e.score or 0.0) for e in only)
        ]
    ignore = [e for e in entries if e.select == SELECT_IGNORE]
    if not ignore:
        return list(labels)
    kept = []
    for lab in labels:
        dropped = False
        for e in ignore:
            if e.label != lab.label:
                continue
            # No score (or 0) means "always ignore this label".
            if not e.score or lab.score < e.score:
                dropped = True
                break
        if not dropped:
            kept.append(lab)
    return kept


def select_cut(cut: CutIn, params: OpParams) -> list[Label] | None:
    """The surviving labels of a kept cut, or None when the cut is dropped (§4)."""
    if not cut.labels:
        return None if params.ignore_empty_labels else []
    kept = filter_labels(cut.labels, params.labels)
    return kept or None


def merge_labels(into: list[Label], more: Iterable[Label]) -> None:
    """Union by name with max score, keeping the order of first appearance."""
    index = {lab.label: i for i, lab in enumerate(into)}
    for lab in more:
        i = index.get(lab.label)
        if i is None:
            index[lab.label] = len(into)
            into.append(Label(lab.label, lab.score))
        elif lab.score > into[i].score:
            into[i] = Label(lab.label, lab.score)


class _Open:
    __slots__ = ("begin", "end", "names", "labels", "cuts")

    def __init__(self, offset: int, names: frozenset[str]) -> None:
        self.begin = offset
        self.end = offset
        self.names = names
        self.labels: list[Label] = []
        self.cuts: list[Cut] = []

    def add(self, offset: int, labels: list[Label], cut: Cut) -> None:
        self.end = offset
        merge_labels(self.labels, labels)
        self.cuts.append(cut)

    def close(self) -> Segment:
        return Segment(offset_begin=self.begin, offset_end=self.end, labels=self.labels, cuts=self.cuts)


class _Pending:
    """A cut held back by ``segment.min_cuts``: it differs from the open segment and its run is still short.
    ``names`` is None for a dropped cut (it joins no segment either way)."""

    __slots__ = ("names", "labels", "cut")

    def __init__(self, names: frozenset[str] | None, labels: list[Label], cut: Cut | None) -> None:
        self.names, self.labels, self.cut = names, labels, cut


class OpAggregator:
    """Streams one op's cuts into segments, with early termination.

    ``add`` returns the segments that the cut closed; after it, ``stopped`` says whether the op reached a
    ``terminate`` threshold (its open segment is then already flushed). ``finish`` flushes at end of video.

    ``segment.min_cuts`` = k > 1 (mode 0): cuts that differ from the open segment wait in ``_pending``; when
    the last k of them agree (same label set, or all dropped) the open segment takes the earlier ones and
    closes, and the run opens the next segment (or, dropped, none); a cut like the open segment first takes
    the pending cuts into it (dropped ones stay out). So closing lags by at most k − 1 cuts.
    """

    def __init__(self, params: OpParams | None = None, segment: SegmentParams | None = None) -> None:
        self.params = params or OpParams()
        self.segment = segment or SegmentParams()
        # bounded (parse_request refuses such windows; an embedder calling aggregate() may not): 1e308 s
        # would overflow int(), 1e-300 s would make every cut its own segment
        self.window_ms = (int(round(clamp(self.segment.interval, MIN_INTERVAL_S, MAX_SECONDS) * 1000))
                          if self.segment.mode == 1 else 0)
        self.min_cuts = (max(1, min(int(self.segment.min_cuts), MAX_MIN_CUTS))
                         if self.segment.mode == 0 else 1)
        self.counts: dict[str, int] = {}
        self.stopped = False
        self._open: _Open | None = None
        self._pending: list[_Pending] = []
        self._segments: list[Segment] = []

    # -- streaming -------------------------------------------------------------------------------
    def add(self, cut: CutIn) -> list[Segment]:
        if self.stopped:
            return []
        closed: list[Segment] = []
        labels = select_cut(cut, self.params)
        if labels is not None and self._terminate_mode == 1:
            for name in {lab.label for lab in labels}:
                self.counts[name] = self.counts.get(name, 0) + 1
        if self.min_cuts > 1 and self._open is not None:
            self._hold(cut, labels, closed)
        elif labels is None:
            if self.segment.mode == 0:
                self._close(closed)
        else:
            out = Cut(offset=cut.offset, result=cut.result, uri=cut.uri)
            names = frozenset(lab.label for lab in labels)
            if self._open is not None and not self._joins(cut.offset, names):
                self._close(closed)
            if self._open is None:
                self._open = _Open(cut.offset, names)
            self._open.add(cut.offset, labels, out)
        if self._reached():
            self.stopped = True
            self._close(closed, count=False)
        return closed

    def close_open(self) -> list[Segment]:
        """Close the open segment now, without stopping (a live discontinuity: the segment must not span
        the gap). Counts for ``terminate`` mode 2 like any closed segment."""
        if self.stopped:
            return []
        closed: list[Segment] = []
        self._close(closed)
        if self._reached():
            self.stopped = True
        return closed

    def finish(self) -> list[Segment]:
        closed: list[Segment] = []
        self._close(closed, count=False)
        self.stopped = True
        return closed

    def result(self) -> OpResult:
        labels: list[Label] = []
        for seg in self._segments:
            merge_labels(labels, seg.labels)
        return OpResult(labels=labels, segments=list(self._segments))

    # -- internals -------------------------------------------------------------------------------
    def _hold(self, cut: CutIn, labels: list[Label] | None, closed: list[Segment]) -> None:
        """One cut under ``min_cuts`` hysteresis while a segment is open (mode 0)."""
        assert self._open is not None
        names = None if labels is None else frozenset(lab.label for lab in labels)
        out = None if labels is None else Cut(offset=cut.offset, result=cut.result, uri=cut.uri)
        if names == self._open.names:  # the flicker is over: the open segment takes it
            self._absorb(self._pending)
            self._pending = []
            self._open.add(cut.offset, labels or [], out)  # type: ignore[arg-type]
            return
        self._pending.append(_Pending(names, labels or [], out))
        run = self._pending[-self.min_cuts:]
        if len(run) < self.min_cuts or any(p.names != names for p in run):
            return
        self._absorb(self._pending[:-self.min_cuts])
        self._pending = []
        self._close(closed)
        if names is not None:  # the run opens the next segment (a dropped run opens none)
            first = run[0].cut
            assert first is not None
            self._open = _Open(first.offset, names)
            for p in run:
                assert p.cut is not None
                self._open.add(p.cut.offset, p.labels, p.cut)

    def _absorb(self, pending: list[_Pending]) -> None:
        """Held cuts join the open segment (their labels too); dropped ones stay out of every segment."""
        assert self._open is not None
        for p in pending:
            if p.cut is not None:
                self._open.add(p.cut.offset, p.labels, p.cut)

    @property
    def _terminate_mode(self) -> int:
        t = self.params.terminate
        return t.mode if t is not None and t.labels else 0

    def _joins(self, offset: int, names: frozenset[str]) -> bool:
        assert self._open is not None
        if self.segment.mode == 1:
            return offset - self.window_ms < self._open.begin
        return names == self._open.names

    def _close(self, closed: list[Segment], count: bool = True) -> None:
        if self._open is None:
            return
        if self._pending:  # a short run at a close (end, terminate, discontinuity) joins the open segment
            self._absorb(self._pending)
            self._pending = []
        seg = self._open.close()
        self._open = None
        self._segments.append(seg)
        closed.append(seg)
        if count and self._terminate_mode == 2:
            for lab in seg.labels:
                self.counts[lab.label] = self.counts.get(lab.label, 0) + 1

    def _reached(self) -> bool:
        mode = self._terminate_mode
        if mode not in (1, 2):
            return False
        assert self.params.terminate is not None
        return any(
            name in self.counts and self.counts[name] >= limit
            for name, limit in self.params.terminate.labels.items()
        )


def aggregate(
    cuts: Iterable[CutIn | Mapping[str, Any]],
    op_params: OpParams | Mapping[str, Any] | None = None,
    segment: SegmentParams | Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Per-frame results → ``{labels, segments}`` by CONTRACT §4–§6.

    ``cuts`` are ``{offset, labels: [{label, score}], result}`` in sampling order; ``op_params`` is an op's
    ``params`` object (``labels``, ``terminate``, ``ignore_empty_labels``); ``segment`` is the request's
    ``params.segment``. Cuts after the op's ``terminate`` threshold are ignored, as the engine would have
    stopped there.
    """
    params = op_params if isinstance(op_params, OpParams) else msgspec.convert(op_params or {}, OpParams)
    seg = segment if isinstance(segment, SegmentParams) else msgspec.convert(segment or {}, SegmentParams)
    agg = OpAggregator(params, seg)
    for raw in cuts:
        cut = raw if isinstance(raw, CutIn) else msgspec.convert(raw, CutIn)
        agg.add(cut)
        if agg.stopped:
            break
    agg.finish()
    return msgspec.to_builtins(agg.result())
