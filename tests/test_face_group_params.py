"""face_group_search refuses a request without a usable gallery with a 400 and a clear message (issue 9).

Before, such a request ran to the end and every cut carried ``result: null``. The check is
:meth:`Op.check_params`, run by :func:`argus_core.ops.check_request` right after ``parse_request``.
"""

from __future__ import annotations

import pytest

from argus_core.errors import InvalidRequest
from argus_core.faces.gallery import GalleryStore
from argus_core.ops import check_request, create_op
from argus_core.request import parse_request


def _req(other):
    op = {"op": "face_group_search"}
    if other is not None:
        op["params"] = {"other": other}
    return parse_request({"data": {"uri": "file:///x.mp4"}, "ops": [op]})


@pytest.fixture()
def ops(tmp_path):
    GalleryStore(tmp_path).create_group("people")
    return {"face_group_search": create_op("face_group_search", options={"galleries_dir": str(tmp_path)})}


@pytest.mark.parametrize("other, message", [
    (None, "face_group_search needs params.other.group: the name of a face gallery"),
    ({}, "face_group_search needs params.other.group: the name of a face gallery"),
    ({"group": ""}, "params.other.group"),  # the declared type check speaks first (ops/params.py)
    ({"group": 7}, "params.other.group"),
    ({"group": "../etc"}, "face_group_search: params.other.group is not a valid gallery name "
                          "(letters, digits, '_', '-', '.')"),
    ({"group": "nobody"}, "face_group_search: group 'nobody' not found"),
])
def test_bad_group_is_400_with_message(ops, other, message):
    with pytest.raises(InvalidRequest) as info:
        check_request(_req(other), ops)
    assert info.value.status == 400
    assert info.value.message == "invalid parameters"  # the documented 400; the reason says what is wrong
    assert message in info.value.detail


def test_existing_group_passes(ops):
    check_request(_req({"group": "people"}), ops)


def test_other_ops_untouched(ops):
    req = parse_request({"data": {"uri": "file:///x.mp4"}, "ops": [{"op": "pulp"}]})
    check_request(req, ops)  # pulp is not in ops: nothing to check
