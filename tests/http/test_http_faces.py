"""Face gallery routes (the groups face_group_search uses), per-key scoping, and the request rewrite."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from argus_http.tenancy import scoped, scoped_request, unscoped
from argus_http.save import jpeg_bytes

from conftest import running_server
from test_http_auth import Signed

import numpy as np


def face_models_ready() -> bool:
    try:
        from argus_core.faces.pipeline import FacePipeline

        FacePipeline()
        return True
    except Exception:
        return False


def test_scoping_names() -> None:
    assert scoped("g1", None) == "g1" and scoped("g1", "") == "g1"
    s = scoped("g1", "1001")
    assert s != "g1" and unscoped(s, "1001") == "g1" and unscoped(s, "1002") is None
    assert scoped("a.b", "1.2") != scoped("2.a.b", "1")  # no ambiguity between uid and group
    body = {"data": {"uri": "x"}, "ops": [{"op": "face_group_search", "params": {"other": {"group": "g1"}}},
                                          {"op": "pulp"}]}
    out = scoped_request(body, "1001")
    assert out["ops"][0]["params"]["other"]["group"] == s and body["ops"][0]["params"]["other"]["group"] == "g1"
    assert scoped_request(body, None) is body


@pytest.fixture(autouse=True)
def clean_galleries(engine):
    """The session engine's galleries outlive a test: start and end each test with none."""
    def wipe() -> None:
        for g in engine.galleries.list_groups():
            engine.galleries.delete_group(g["group"])
    wipe()
    yield
    wipe()


@pytest.fixture
def api(tmp_path: Path, engine):
    with running_server(tmp_path, engine) as (srv, client):
        yield srv, client


def test_group_lifecycle(api, tmp_path: Path) -> None:
    srv, c = api
    st, _, out = c.call("POST", "/v1/face/group/staff", {"meta": {"team": "a"}})
    assert st == 200 and out["group"] == "staff" and out["faces"] == 0 and out["meta"] == {"team": "a"}
    assert c.call("POST", "/v1/face/group/staff", {})[:3:2] == (409, {"error": "group already exists"})
    assert [g["group"] for g in c.call("GET", "/v1/face/group")[2]] == ["staff"]
    st, _, out = c.call("GET", "/v1/face/group/staff")
    assert st == 200 and out["face_list"] == []
    st, _, out = c.call("POST", "/v1/face/group/staff/remove", {"ids": ["nobody"]})
    assert (st, out) == (404, {"error": "face not found"})
    assert c.call("POST", "/v1/face/group/staff/remove", {})[0] == 400
    assert c.call("POST", "/v1/face/group/bad%20name", {})[:3:2] == (400, {"error": "invalid group name"})
    assert c.call("GET", "/v1/face/group/none")[:3:2] == (404, {"error": "group not found"})
    # images are fetched under the same SSRF policy as videos
    st, _, out = c.call("POST", "/v1/face/group/staff/add",
                        {"data": {"uri": "http://10.0.0.1/face.jpg", "attribute": {"name": "Ann"}}})
    assert (st, out) == (400, {"error": "invalid parameters"})
    assert c.call("POST", "/v1/face/group/staff/add", {"data": {"uri": "data:,x"}})[0] == 400  # no name
    assert c.call("DELETE", "/v1/face/group/staff")[:3:2] == (200, {})
    assert c.call("GET", "/v1/face/group")[2] == []


@pytest.mark.skipif(not face_models_ready(), reason="face models not installed in models/")
def test_add_needs_exactly_one_face(api) -> None:
    srv, c = api
    c.call("POST", "/v1/face/group/g", {})
    blank = "data:image/jpeg;base64," + base64.b64encode(jpeg_bytes(np.full((120, 160, 3), 128, np.uint8))).decode()
    st, _, out = c.call("POST", "/v1/face/group/g/add", {"data": {"uri": blank, "attribute": {"name": "Ann"}}})
    assert (st, out) == (400, {"error": "no face in image"})
    st, _, out = c.call("POST", "/v1/face/group/g/search", {"data": {"uri": blank}})
    assert (st, out) == (200, {"detections": []})
    st, _, out = c.call("POST", "/v1/face/group/g/add", {"data": {"uri": "data:image/jpeg;base64,AAAA",
                                                                  "attribute": {"name": "Ann"}}})
    assert (st, out) == (400, {"error": "cannot decode image"})


def test_groups_are_per_key(tmp_path: Path, engine) -> None:
    keys = "alice-ak:alice-sk:1001,bob-ak:bob-sk:1002"
    with running_server(tmp_path, engine, auth_keys=keys) as (_, c):
        alice, bob = Signed(c, "alice-ak", "alice-sk"), Signed(c, "bob-ak", "bob-sk")
        assert alice.call("POST", "/v1/face/group/shared-name", {})[0] == 200
        assert bob.call("GET", "/v1/face/group")[2] == []
        assert bob.call("GET", "/v1/face/group/shared-name")[0] == 404
        assert bob.call("POST", "/v1/face/group/shared-name", {})[0] == 200  # its own group of that name
        assert [g["group"] for g in alice.call("GET", "/v1/face/group")[2]] == ["shared-name"]
        assert c.call("GET", "/v1/face/group")[0] == 401
