"""The lenient readers of params.other and operator flags (ops/params.py), table-driven."""

from __future__ import annotations

import math

import pytest

from argus_core.ops.params import other_bool, other_float, other_int, parse_flag, truthy
from argus_core.request import OpParams


def p(**other) -> OpParams:
    return OpParams(other=other)


@pytest.mark.parametrize(
    "value,want",
    [(True, True), (False, False), (1, True), (0, False), (2, True), (0.0, False), ("true", True),
     (" Yes ", True), ("on", True), ("1", True), ("false", False), ("no", False), ("OFF", False), ("0", False),
     ("maybe", None), ("", None), (None, None), ([], None), ({}, None), (math.nan, None), (math.inf, None)],
)
def test_parse_flag(value, want):
    assert parse_flag(value) is want
    assert truthy(value) is (want is True)


@pytest.mark.parametrize(
    "other,want",
    [({}, 0.3), ({"threshold": 0.5}, 0.5), ({"threshold": 2}, 1.0), ({"threshold": -1}, 0.0),
     ({"threshold": "0.5"}, 0.3), ({"threshold": True}, 0.3), ({"threshold": math.nan}, 0.3),
     ({"threshold": math.inf}, 0.3), ({"threshold": None}, 0.3)],
)
def test_other_float(other, want):
    assert other_float(p(**other), "threshold", 0.3) == want


@pytest.mark.parametrize(
    "other,want",
    [({}, 5), ({"topk": 3}, 3), ({"topk": 3.9}, 3), ({"topk": 0}, 0), ({"topk": 5000}, 1000),
     ({"topk": -2}, 0), ({"topk": "3"}, 5), ({"topk": False}, 5)],
)
def test_other_int(other, want):
    assert other_int(p(**other), "topk", 5, 0, 1000) == want


@pytest.mark.parametrize(
    "other,default,want",
    [({}, False, False), ({}, True, True), ({"detail": True}, False, True), ({"detail": "yes"}, False, True),
     ({"detail": 0}, True, False), ({"detail": "bogus"}, True, True), ({"detail": [1]}, False, False)],
)
def test_other_bool(other, default, want):
    assert other_bool(p(**other), "detail", default) is want


def test_malformed_values_are_logged(caplog):
    other_float(p(threshold="high"), "threshold", 0.3)
    assert "params.other.threshold='high'" in caplog.text


def test_huge_json_integers_are_malformed_not_fatal():
    # msgspec decodes 1e400 written out as a Python int: too big for a float, must not raise in a batch
    huge = 10**400
    assert parse_flag(huge) is None and truthy(huge) is False
    assert other_bool(p(detail=huge), "detail", True) is True
    assert other_float(p(threshold=huge), "threshold", 0.1) == 0.1
    assert other_int(p(topk=huge), "topk", 5, 0, 10) == 5
