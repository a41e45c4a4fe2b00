"""CONTRACT §14: the verdict pass (``suggestion`` per cut, segment, op, video) — table tests."""

from __future__ import annotations

import copy

import pytest

from argus_core import aggregate, verdict
from argus_core.errors import InvalidRequest
from argus_core.verdict import BLOCK, PASS, REVIEW, Policy


def pulp(label: int, score: float, review: bool | None = None) -> dict:
    return {"label": label, "score": score, "review": score < 0.6 if review is None else review,
            "confidences": []}


def det(*pairs: tuple[str, float]) -> dict:
    return {"detections": [{"index": i, "class": c, "score": s, "pts": [[0, 0], [9, 0], [9, 9], [0, 9]]}
                           for i, (c, s) in enumerate(pairs)]}


def face(name: str, score: float, review: bool = False) -> dict:
    return {"detections": [{"boundingBox": {"pts": [[0, 0], [9, 9]], "score": 0.99},
                            "value": {"name": name, "id": "x", "score": score, "review": review}}]}


@pytest.mark.parametrize("items, expected", [
    ([], PASS), ([PASS], PASS), ([PASS, REVIEW], REVIEW), ([REVIEW, BLOCK, PASS], BLOCK), ([BLOCK], BLOCK),
])
def test_worst_is_the_qiniu_rule(items, expected):
    # CONTRACT §14: block if any blocks, else review if any reviews, else pass
    assert verdict.worst(items) == expected


# (op, cut result, segment labels, request policy, expected)
CUTS = [
    # pulp defaults: porn blocks when sure, is reviewed when unsure; sexy reviewed; normal passes unless unsure
    ("pulp", pulp(0, 0.93), [("0", 0.93)], None, BLOCK),
    ("pulp", pulp(0, 0.55), [("0", 0.55)], None, REVIEW),
    ("pulp", pulp(1, 0.91), [("1", 0.91)], None, REVIEW),
    ("pulp", pulp(2, 0.97), [("2", 0.97)], None, PASS),
    ("pulp", pulp(2, 0.45), [("2", 0.45)], None, REVIEW),          # review: true → review
    ("pulp", pulp(2, 0.45), [("2", 0.45)], {"review_flag": False}, PASS),
    # request thresholds
    ("pulp", pulp(0, 0.75), [("0", 0.75)], {"block": {"0": 0.8}}, REVIEW),
    ("pulp", pulp(0, 0.85), [("0", 0.85)], {"block": {"0": 0.8}}, BLOCK),
    ("pulp", pulp(1, 0.5, False), [("1", 0.5)], {"review": {"1": 0.6}}, PASS),
    ("pulp", pulp(1, 0.7), [("1", 0.7)], {"review": {"1": 0.6}}, REVIEW),
    ("pulp", pulp(1, 0.9), [("1", 0.9)], {"review": {"1": None}}, PASS),  # null removes the default entry
    ("pulp", pulp(1, 0.9), [("1", 0.9)], {"block": {"1": 0.8}}, BLOCK),
    # a label the §4 filter dropped from the segment never counts
    ("pulp", pulp(0, 0.93), [], None, PASS),
    # terror
    ("terror", {"label": 1, "score": 0.9, "review": False}, [("1", 0.9)], None, BLOCK),
    ("terror", {"label": 1, "score": 0.52, "review": True}, [("1", 0.52)], None, REVIEW),
    ("terror", {"label": 0, "score": 0.98, "review": False}, [("0", 0.98)], None, PASS),
    ("terror", {"label": 0, "score": 0.53, "review": True}, [("0", 0.53)], None, REVIEW),
    ("terror_detect", det(("knives", 0.7)), [("knives", 0.7)], None, REVIEW),
    ("terror_classify", {"confidences": [{"index": 7, "class": "guns", "score": 0.8}]}, [("guns", 0.8)],
     {"block": {"guns": 0.75}}, BLOCK),
    # detection / image_label / ocr pass unless the policy names labels; "*" = every label
    ("detection", det(("person", 0.9), ("knife", 0.8)), [("person", 0.9), ("knife", 0.8)], None, PASS),
    ("detection", det(("person", 0.9), ("knife", 0.8)), [("person", 0.9), ("knife", 0.8)],
     {"block": {"knife": 0.7}}, BLOCK),
    ("detection", det(("person", 0.9), ("knife", 0.6)), [("person", 0.9), ("knife", 0.8)],
     {"block": {"knife": 0.7}}, PASS),                            # this cut's own knife score counts
    ("detection", det(("person", 0.9)), [("person", 0.9)], {"review": {"*": 0.5}}, REVIEW),
    ("detection", det(("person", 0.9)), [("person", 0.9)], {"review": {"*": 0.5, "person": 0.95}}, PASS),
    ("image_label", {"confidences": [{"class": "rifle", "score": 0.4}]}, [("rifle", 0.4)], None, PASS),
    ("image_label", {"confidences": [{"class": "rifle", "score": 0.4}]}, [("rifle", 0.4)],
     {"review": {"rifle": 0.3}}, REVIEW),
    # an unknown result shape (OCR keywords) uses the segment's labels
    ("ocr", {"texts": [{"text": "SALE now", "score": 0.9, "pts": []}]}, [("sale", 0.9)], None, PASS),
    ("ocr", {"texts": [{"text": "SALE now", "score": 0.9, "pts": []}]}, [("sale", 0.9)],
     {"block": {"sale": 0.5}}, BLOCK),
    # faces
    ("politician", face("Some Name", 0.8), [("Some Name", 0.8)], None, REVIEW),
    ("politician", face("Some Name", 0.8), [("Some Name", 0.8)], {"block": {"Some Name": 0.7}}, BLOCK),
    ("politician", face("Some Name", 0.8, review=True), [("Some Name", 0.8)], {"block": {"*": 0.0}}, REVIEW),
    ("face_group_search", face("Alice", 0.8), [("Alice", 0.8)], None, PASS),
    ("face_group_search", face("Alice", 0.8), [("Alice", 0.8)], {"block": {"Alice": 0.5}}, BLOCK),
    # a failed frame (null result) shows nothing
    ("pulp", None, [], None, PASS),
]


@pytest.mark.parametrize("op, result, seg_labels, req_policy, expected", CUTS)
def test_cut_suggestion(op, result, seg_labels, req_policy, expected):
    other = {"suggestion": req_policy} if req_policy is not None else {}
    policy = verdict.policy_for(op, other)
    labels = [{"label": n, "score": s} for n, s in seg_labels]
    assert verdict.cut_suggestion(result, policy, labels) == expected


def test_layers_defaults_config_request():
    config = {"pulp": {"block": {"0": 0.9}, "review": {"1": 0.5}}, "detection": {"block": {"knife": 0.5}}}
    p = verdict.policy_for("pulp", None, config)
    assert p == Policy(block={"0": 0.9}, review={"0": 0.0, "1": 0.5}, review_flag=True)
    p = verdict.policy_for("pulp", {"suggestion": {"block": {"0": 0.7}}}, config)
    assert p.block == {"0": 0.7} and p.review == {"0": 0.0, "1": 0.5}
    assert verdict.policy_for("detection", {}, config).block == {"knife": 0.5}
    assert verdict.policy_for("my_own_op") == Policy()


@pytest.mark.parametrize("bad", [
    "block", {"block": {"0": 1.5}}, {"block": {"0": "high"}}, {"block": ["0"]}, {"review": {"1": True}},
    {"review_flag": "yes"}, {"blok": {"0": 0.5}}, {"block": {"0": float("nan")}},
])
def test_bad_request_policy_is_invalid_parameters(bad):
    with pytest.raises(InvalidRequest) as err:
        verdict.policies_of({"ops": [{"op": "pulp", "params": {"other": {"suggestion": bad}}}]})
    assert err.value.message == "invalid parameters" and "suggestion" in err.value.detail


def test_bad_config_policy_is_value_error():
    with pytest.raises(ValueError):
        verdict.check_config({"pulp": {"block": {"0": 2}}})
    with pytest.raises(ValueError):
        verdict.check_config(["pulp"])
    assert verdict.check_config({"pulp": {"block": {"0": 0.9}}}) == {"pulp": {"block": {"0": 0.9}}}


def _pulp_result() -> dict:
    cuts = [{"offset": 0, "labels": [{"label": "2", "score": 0.9}], "result": pulp(2, 0.9)},
            {"offset": 1000, "labels": [{"label": "1", "score": 0.8}], "result": pulp(1, 0.8)},
            {"offset": 2000, "labels": [{"label": "1", "score": 0.7}], "result": pulp(1, 0.7)},
            {"offset": 3000, "labels": [{"label": "0", "score": 0.95}], "result": pulp(0, 0.95)},
            {"offset": 4000, "labels": [{"label": "2", "score": 0.99}], "result": pulp(2, 0.99)}]
    return aggregate(cuts)


def test_annotate_adds_fields_and_never_changes_seed_fields():
    result = {"pulp": _pulp_result(),
              "detection": aggregate([{"offset": 0, "labels": [{"label": "person", "score": 0.9}],
                                       "result": det(("person", 0.9))}])}
    seed = copy.deepcopy(result)
    policies = verdict.policies_of({"ops": [{"op": "pulp"}, {"op": "detection"}]})
    assert verdict.annotate(result, policies) == BLOCK

    pulp_res = result["pulp"]
    assert [s["suggestion"] for s in pulp_res["segments"]] == [PASS, REVIEW, BLOCK, PASS]
    assert [c["suggestion"] for s in pulp_res["segments"] for c in s["cuts"]] == [PASS, REVIEW, REVIEW, BLOCK, PASS]
    assert pulp_res["suggestion"] == BLOCK and result["detection"]["suggestion"] == PASS
    assert verdict.overall(result) == BLOCK

    # removing every suggestion key gives back the seed result exactly
    for res in result.values():
        res.pop("suggestion")
        for s in res["segments"]:
            s.pop("suggestion")
            for c in s["cuts"]:
                c.pop("suggestion")
    assert result == seed


def test_overall_of_empty_and_review_only():
    assert verdict.annotate({}) == PASS and verdict.overall({}) == PASS and verdict.overall(None) == PASS
    assert verdict.overall({"pulp": {"labels": [], "segments": []}}) is None  # never annotated
    res = {"pulp": aggregate([{"offset": 0, "labels": [{"label": "1", "score": 0.7}], "result": pulp(1, 0.7)}]),
           "detection": {"labels": [], "segments": []}}
    assert verdict.annotate(res) == REVIEW
    assert res["detection"]["suggestion"] == PASS


def test_policy_in_request_changes_the_verdict():
    body = {"ops": [{"op": "pulp", "params": {"other": {"suggestion": {"block": {"0": None}, "review": {"0": None,
                                                                                                        "1": None}}}}}]}
    res = {"pulp": _pulp_result()}
    assert verdict.annotate(res, verdict.policies_of(body)) == PASS
