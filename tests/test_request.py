"""Request validation: the documented 400 messages (CONTRACT §1, §2)."""

from __future__ import annotations

import pytest

from argus_core.errors import ArgusError
from argus_core.request import parse_request, sampling_of

OPS = {"pulp", "detection"}


def body(vframe=None, ops=None, **params):
    b = {"data": {"uri": "http://example.com/v.mp4"}, "params": dict(params),
         "ops": [{"op": "pulp"}] if ops is None else ops}
    if vframe is not None:
        b["params"]["vframe"] = vframe
    return b


ERROR_CASES = [
    ("no ops key", {"data": {"uri": "a.mp4"}}, 400, "empty op"),
    ("empty ops", body(ops=[]), 400, "empty op"),
    ("unknown op", body(ops=[{"op": "astrology"}]), 400, "bad op"),
    ("duplicate op", body(ops=[{"op": "pulp"}, {"op": "pulp"}]), 400, "invalid parameters"),
    ("mode 2", body({"mode": 2}), 400, "invalid mode, allow mode is [0, 1]"),
    ("mode -1", body({"mode": -1}), 400, "invalid mode, allow mode is [0, 1]"),
    ("interval 11", body({"mode": 0, "interval": 11}), 400, "invalid interval, allow interval is [0, 10]"),
    ("interval -1", body({"mode": 0, "interval": -1}), 400, "invalid interval, allow interval is [0, 10]"),
    ("ss < 0", body({"mode": 0, "ss": -1}), 400, "invalid starttime"),
    ("t < 0", body({"mode": 0, "t": -0.5}), 400, "invalid duration"),
    ("mode as string", body({"mode": "0"}), 400, "invalid parameters"),
    ("uri missing", {"data": {}, "ops": [{"op": "pulp"}]}, 400, "invalid parameters"),
    ("bad scheme", {"data": {"uri": "gopher://x/y"}, "ops": [{"op": "pulp"}]}, 400, "invalid parameters"),
    ("labels not a list", body(ops=[{"op": "pulp", "params": {"labels": 3}}]), 400, "invalid parameters"),
    ("not json", b"{nope", 400, "invalid parameters"),
    ("segment mode 1 without interval", body(segment={"mode": 1}), 400, "invalid parameters"),
]


@pytest.mark.parametrize("name,raw,status,message", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_errors(name, raw, status, message):
    with pytest.raises(ArgusError) as err:
        parse_request(raw, OPS)
    assert (err.value.status, err.value.message) == (status, message)


def test_defaults():  # CONTRACT §2: default mode 1, interval 5
    req = parse_request(body(), OPS)
    s = sampling_of(req)
    assert (s.mode, s.interval, s.ss, s.t) == (1, 5.0, 0.0, None)
    s = sampling_of(parse_request(body({"mode": 0, "interval": 0}), OPS))
    assert (s.mode, s.interval) == (0, 5.0)
    s = sampling_of(parse_request(body({"mode": 0, "interval": 10, "ss": 1.5, "t": 3}), OPS))
    assert (s.interval, s.ss, s.t) == (10.0, 1.5, 3.0)


def test_configured_interval_bound_is_in_the_message():
    with pytest.raises(ArgusError) as err:
        parse_request(body({"mode": 0, "interval": 31}), OPS, max_interval=30)
    assert err.value.message == "invalid interval, allow interval is [0, 30]"
    parse_request(body({"mode": 0, "interval": 30}), OPS, max_interval=30)


def test_aliases_and_unknown_keys():  # CONTRACT §1
    raw = body(ops=[{"op": "pulp", "hookURI": "http://h/op", "segment_hook_url": "http://h/seg", "zzz": 1}],
               hookURI="http://h/final")
    raw["unknown"] = {"x": 1}
    req = parse_request(raw, OPS)
    assert req.params.hook_url == "http://h/final"
    assert req.ops[0].hook_url == "http://h/op"
    assert req.ops[0].hook_url_segment == "http://h/seg"


def test_full_documented_body_parses():
    raw = {
        "data": {"uri": "https://x/y.mp4", "attribute": {"id": "a", "meta": {"k": [1]}}},
        "params": {"async": True, "vframe": {"mode": 0, "interval": 2.5}, "save": {"bucket": "b", "zone": 1,
                   "prefix": "p"}, "hookURL": "http://h/", "segment": {"mode": 1, "interval": 10}},
        "ops": [{"op": "pulp", "hookURL": "http://h/1", "hookURL_segment": "http://h/2",
                 "params": {"labels": [{"label": "0", "select": 1, "score": 0.5}],
                            "terminate": {"mode": 1, "labels": {"0": 3}}, "ignore_empty_labels": True,
                            "other": {"detail": True}}}],
    }
    req = parse_request(raw, OPS)
    assert req.params.async_ is True and req.ops[0].params.terminate.labels == {"0": 3}
    assert req.data.attribute.meta == {"k": [1]}
