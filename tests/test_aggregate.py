"""Table-driven tests of argus_core.aggregate: CONTRACT §4 filter, §5 segments, §6 termination."""

from __future__ import annotations

import pytest

from argus_core import aggregate
from argus_core.aggregate import filter_labels
from argus_core.request import LabelSelect
from argus_core.result import Label


def cut(offset, *labels, result=None):
    return {"offset": offset, "labels": [{"label": l, "score": s} for l, s in labels], "result": result}


def seg_summary(out):
    return [(s["offset_begin"], s["offset_end"], sorted(l["label"] for l in s["labels"]),
             [c["offset"] for c in s["cuts"]]) for s in out["segments"]]


# -- §4 label filter ----------------------------------------------------------------------------
FILTER_CASES = [
    # (labels, entries, kept)
    ([("0", 0.9), ("2", 0.1)], [], ["0", "2"]),
    # select=2 (ONLY): keep matching labels with score >= threshold, drop all others
    ([("0", 0.9), ("2", 0.1)], [("0", 2, 0.5)], ["0"]),
    ([("0", 0.4)], [("0", 2, 0.5)], []),
    ([("0", 0.5)], [("0", 2, 0.5)], ["0"]),  # >= is inclusive
    ([("0", 0.9), ("1", 0.9)], [("0", 2, 0.5), ("1", 1, 0.95)], ["0"]),  # any select=2 → ONLY rule wins
    # select=1 (IGNORE): drop when score < threshold; keep at or above
    ([("0", 0.3)], [("0", 1, 0.5)], []),
    ([("0", 0.5)], [("0", 1, 0.5)], ["0"]),
    ([("0", 0.7)], [("0", 1, 0.5)], ["0"]),
    # missing score (or 0): always dropped
    ([("0", 0.99)], [("0", 1, None)], []),
    ([("0", 0.99)], [("0", 1, 0.0)], []),
    # labels without an entry are kept; other select values ignored
    ([("2", 0.9)], [("0", 1, 0.5)], ["2"]),
    ([("0", 0.1)], [("0", 7, 0.5)], ["0"]),
    ([("0", 0.1)], [("0", 0, 0.5)], ["0"]),
]


@pytest.mark.parametrize("labels,entries,kept", FILTER_CASES)
def test_filter_labels(labels, entries, kept):  # CONTRACT §4
    got = filter_labels([Label(l, s) for l, s in labels],
                        [LabelSelect(label=l, select=sel, score=sc) for l, sel, sc in entries])
    assert [l.label for l in got] == kept


# -- §4/§5 cuts → segments ----------------------------------------------------------------------
SEGMENT_CASES = [
    ("same label merges", [cut(0, ("2", 0.9)), cut(1000, ("2", 0.8)), cut(2000, ("2", 0.95))], {}, {},
     [(0, 2000, ["2"], [0, 1000, 2000])]),
    ("label change splits", [cut(0, ("2", 0.9)), cut(1000, ("0", 0.8)), cut(2000, ("2", 0.95))], {}, {},
     [(0, 0, ["2"], [0]), (1000, 1000, ["0"], [1000]), (2000, 2000, ["2"], [2000])]),
    ("same set, different order, same segment",
     [cut(0, ("person", 0.9), ("car", 0.5)), cut(1000, ("car", 0.7), ("person", 0.6))], {}, {},
     [(0, 1000, ["car", "person"], [0, 1000])]),
    ("subset is a different set",
     [cut(0, ("person", 0.9)), cut(1000, ("person", 0.9), ("car", 0.5))], {}, {},
     [(0, 0, ["person"], [0]), (1000, 1000, ["car", "person"], [1000])]),
    ("empty labels kept as their own segment",
     [cut(0, ("2", 0.9)), cut(1000), cut(2000)], {}, {},
     [(0, 0, ["2"], [0]), (1000, 2000, [], [1000, 2000])]),
    ("ignore_empty_labels drops empty cuts and closes the segment",
     [cut(0, ("2", 0.9)), cut(1000), cut(2000, ("2", 0.9))], {"ignore_empty_labels": True}, {},
     [(0, 0, ["2"], [0]), (2000, 2000, ["2"], [2000])]),
    ("dropped cut closes the segment even if the next has the same labels",
     [cut(0, ("0", 0.9)), cut(1000, ("0", 0.2)), cut(2000, ("0", 0.9))],
     {"labels": [{"label": "0", "select": 1, "score": 0.5}]}, {},
     [(0, 0, ["0"], [0]), (2000, 2000, ["0"], [2000])]),
    ("filter removes a label from a multi-label cut",
     [cut(0, ("person", 0.9), ("car", 0.2)), cut(1000, ("person", 0.8))],
     {"labels": [{"label": "car", "select": 1, "score": 0.5}]}, {},
     [(0, 1000, ["person"], [0, 1000])]),
    ("filters that drop everything", [cut(0, ("2", 0.9)), cut(1000, ("2", 0.9))],
     {"labels": [{"label": "2", "select": 1}]}, {}, []),
    ("segment mode 1: fixed windows, labels unioned",
     [cut(0, ("2", 0.9)), cut(1000, ("0", 0.8)), cut(2000, ("2", 0.7)), cut(3000, ("1", 0.6)),
      cut(4500, ("2", 0.5))], {}, {"mode": 1, "interval": 3},
     [(0, 2000, ["0", "2"], [0, 1000, 2000]), (3000, 4500, ["1", "2"], [3000, 4500])]),
    ("segment mode 1: dropped cuts do not close a window",
     [cut(0, ("2", 0.9)), cut(1000, ("0", 0.1)), cut(2000, ("2", 0.7))],
     {"labels": [{"label": "0", "select": 1, "score": 0.5}]}, {"mode": 1, "interval": 5},
     [(0, 2000, ["2"], [0, 2000])]),
]


@pytest.mark.parametrize("name,cuts,params,segment,want", SEGMENT_CASES, ids=[c[0] for c in SEGMENT_CASES])
def test_segments(name, cuts, params, segment, want):  # CONTRACT §4, §5
    out = aggregate(cuts, params, segment)
    assert seg_summary(out) == want
    if not want:
        assert out == {"labels": [], "segments": []}


def _flick(*names, drop=()):
    """Cuts 1 s apart: a name per cut ('' = no label; index in ``drop`` = a cut the filter drops)."""
    return [cut(i * 1000, ("x", 0.1)) if i in drop else cut(i * 1000, *(((n, 0.9),) if n else ()))
            for i, n in enumerate(names)]


DROP_X = {"labels": [{"label": "x", "select": 1, "score": 0.5}]}
MIN_CUTS_CASES = [
    # (name, cuts, params, min_cuts, want) — issue 9's hysteresis extension, mode 0
    ("1 is CONTRACT §5", _flick("a", "b", "a"), {}, 1,
     [(0, 0, ["a"], [0]), (1000, 1000, ["b"], [1000]), (2000, 2000, ["a"], [2000])]),
    ("a one-cut flicker joins the segment around it", _flick("a", "b", "a", "a"), {}, 2,
     [(0, 3000, ["a", "b"], [0, 1000, 2000, 3000])]),
    ("a change that lasts min_cuts splits where it began", _flick("a", "a", "b", "b", "b"), {}, 2,
     [(0, 1000, ["a"], [0, 1000]), (2000, 4000, ["b"], [2000, 3000, 4000])]),
    ("mixed flicker does not add up to a run", _flick("a", "b", "c", "b", "c", "a"), {}, 2,
     [(0, 5000, ["a", "b", "c"], [0, 1000, 2000, 3000, 4000, 5000])]),
    ("the flicker before a run joins the old segment", _flick("a", "c", "b", "b"), {}, 2,
     [(0, 1000, ["a", "c"], [0, 1000]), (2000, 3000, ["b"], [2000, 3000])]),
    ("a short dropped run is bridged, its cuts in no segment", _flick("a", "", "a", drop=(1,)), DROP_X, 2,
     [(0, 2000, ["a"], [0, 2000])]),
    ("a long dropped run closes the segment", _flick("a", "", "", "a", drop=(1, 2)), DROP_X, 2,
     [(0, 0, ["a"], [0]), (3000, 3000, ["a"], [3000])]),
    ("a short run at the end joins the last segment", _flick("a", "a", "b"), {}, 3,
     [(0, 2000, ["a", "b"], [0, 1000, 2000])]),
    ("empty label sets are a set like any other", _flick("a", "", "", "a"), {}, 3,
     [(0, 3000, ["a"], [0, 1000, 2000, 3000])]),
]


@pytest.mark.parametrize("name,cuts,params,min_cuts,want", MIN_CUTS_CASES, ids=[c[0] for c in MIN_CUTS_CASES])
def test_segment_min_cuts(name, cuts, params, min_cuts, want):
    assert seg_summary(aggregate(cuts, params, {"min_cuts": min_cuts})) == want


def test_min_cuts_streams_each_segment_once_and_in_order():
    from argus_core.aggregate import OpAggregator
    from argus_core.request import SegmentParams
    from argus_core.result import CutIn

    agg = OpAggregator(segment=SegmentParams(min_cuts=2))
    seen = []
    for c in _flick("a", "b", "a", "b", "b", "c", "c"):
        seen += agg.add(CutIn(offset=c["offset"], labels=[Label(l["label"], l["score"]) for l in c["labels"]]))
    seen += agg.finish()
    assert [(s.offset_begin, s.offset_end) for s in seen] == [(0, 2000), (3000, 4000), (5000, 6000)]
    assert [(s.offset_begin, s.offset_end) for s in agg.result().segments] == [(0, 2000), (3000, 4000), (5000, 6000)]


@pytest.mark.parametrize("bad", [0, -1, 1001, True, 2.5, "2"])
def test_min_cuts_is_validated(bad):
    from argus_core.errors import InvalidRequest
    from argus_core.request import parse_request

    body = {"data": {"uri": "file:///v.mp4"}, "params": {"segment": {"min_cuts": bad}}, "ops": [{"op": "pulp"}]}
    with pytest.raises(InvalidRequest):
        parse_request(body, None)


def test_scores_are_max_and_labels_in_first_appearance_order():  # CONTRACT §5
    out = aggregate([cut(0, ("b", 0.2), ("a", 0.3)), cut(1000, ("a", 0.9), ("b", 0.1)), cut(2000, ("c", 0.5))])
    assert out["segments"][0]["labels"] == [{"label": "b", "score": 0.2}, {"label": "a", "score": 0.9}]
    assert out["labels"] == [{"label": "b", "score": 0.2}, {"label": "a", "score": 0.9},
                             {"label": "c", "score": 0.5}]


def test_missing_score_means_zero_for_only():  # CONTRACT §4: select=2 with no score keeps any score
    out = aggregate([cut(0, ("0", 0.01))], {"labels": [{"label": "0", "select": 2}]})
    assert [l["label"] for l in out["labels"]] == ["0"]


def test_cut_result_and_uri_pass_through():
    out = aggregate([{"offset": 5, "labels": [{"label": "2", "score": 1.0}], "result": {"x": 1}, "uri": "u"}])
    assert out["segments"][0]["cuts"] == [{"offset": 5, "result": {"x": 1}, "uri": "u"}]


# -- §6 termination -----------------------------------------------------------------------------
TERMINATE_CASES = [
    ("mode 1 counts cuts per label",
     [cut(i * 1000, ("0", 0.9)) for i in range(10)], {"mode": 1, "labels": {"0": 3}}, [0, 1000, 2000]),
    ("mode 1 only counts surviving labels",
     [cut(0, ("0", 0.9)), cut(1000, ("2", 0.9)), cut(2000, ("0", 0.9)), cut(3000, ("0", 0.9))],
     {"mode": 1, "labels": {"0": 2}}, [0, 1000, 2000]),
    ("max 0 triggers on first occurrence",
     [cut(0, ("2", 0.9)), cut(1000, ("0", 0.9)), cut(2000, ("0", 0.9))],
     {"mode": 1, "labels": {"0": 0}}, [0, 1000]),
    ("mode 2 counts closed segments",
     [cut(0, ("0", 0.9)), cut(1000, ("2", 0.9)), cut(2000, ("0", 0.9)), cut(3000, ("2", 0.9)),
      cut(4000, ("0", 0.9)), cut(5000, ("2", 0.9))],
     {"mode": 2, "labels": {"0": 2}}, [0, 1000, 2000, 3000]),
    ("mode 2 never counts the open segment",
     [cut(i * 1000, ("0", 0.9)) for i in range(5)], {"mode": 2, "labels": {"0": 1}},
     [0, 1000, 2000, 3000, 4000]),
    ("other modes never terminate",
     [cut(i * 1000, ("0", 0.9)) for i in range(4)], {"mode": 3, "labels": {"0": 1}}, [0, 1000, 2000, 3000]),
    ("labels not listed never terminate",
     [cut(i * 1000, ("2", 0.9)) for i in range(4)], {"mode": 1, "labels": {"0": 1}}, [0, 1000, 2000, 3000]),
]


@pytest.mark.parametrize("name,cuts,terminate,kept", TERMINATE_CASES, ids=[c[0] for c in TERMINATE_CASES])
def test_terminate(name, cuts, terminate, kept):  # CONTRACT §6
    out = aggregate(cuts, {"terminate": terminate})
    assert [c["offset"] for s in out["segments"] for c in s["cuts"]] == kept


def test_terminate_flushes_open_segment():  # CONTRACT §6
    out = aggregate([cut(i * 1000, ("0", 0.9)) for i in range(10)], {"terminate": {"mode": 1, "labels": {"0": 2}}})
    assert seg_summary(out) == [(0, 1000, ["0"], [0, 1000])]
