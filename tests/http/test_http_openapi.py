"""/openapi.json matches the routes, and real responses validate against its schemas."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from argus_http.app import ROUTES

from conftest import Receiver, running_server, video_body


class SchemaError(AssertionError):
    pass


def validate(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> None:
    """A small validator for the OpenAPI 3.1 (JSON Schema) subset the document uses."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return validate(value, doc["components"]["schemas"][name], doc, where)
    for key in ("oneOf", "anyOf"):
        if key not in schema:
            continue
        ok = 0
        for sub in schema[key]:
            try:
                validate(value, sub, doc, where)
                ok += 1
            except SchemaError:
                pass
        if ok == 0:
            raise SchemaError(f"{where}: matches no {key} branch: {value!r:.200}")
        return
    if value is None and schema.get("nullable"):
        return
    t = schema.get("type")
    checks = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if t in checks and not isinstance(value, checks[t]):
        raise SchemaError(f"{where}: expected {t}, got {type(value).__name__}")
    if t == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
        raise SchemaError(f"{where}: expected integer, got {value!r}")
    if t == "number" and (not isinstance(value, (int, float)) or isinstance(value, bool)):
        raise SchemaError(f"{where}: expected number, got {value!r}")
    if "enum" in schema and value not in schema["enum"]:
        raise SchemaError(f"{where}: {value!r} not in {schema['enum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        raise SchemaError(f"{where}: {value!r} does not match {schema['pattern']}")
    if t == "object":
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                raise SchemaError(f"{where}: missing {req!r}")
        extra = schema.get("additionalProperties", True)
        for k, v in value.items():
            if k in props:
                validate(v, props[k], doc, f"{where}.{k}")
            elif extra is False:
                raise SchemaError(f"{where}: unexpected property {k!r}")
            elif isinstance(extra, dict):
                validate(v, extra, doc, f"{where}.{k}")
    if t == "array":
        for i, item in enumerate(value):
            validate(item, schema.get("items", {}), doc, f"{where}[{i}]")


def test_validator_can_fail() -> None:
    doc = {"components": {"schemas": {"E": {"type": "object", "properties": {"error": {"type": "string"}},
                                            "required": ["error"], "additionalProperties": False}}}}
    validate({"error": "x"}, {"$ref": "#/components/schemas/E"}, doc)
    for bad in ({}, {"error": 1}, {"error": "x", "more": 1}, []):
        with pytest.raises(SchemaError):
            validate(bad, {"$ref": "#/components/schemas/E"}, doc)


@pytest.fixture
def served(tmp_path: Path, engine, media_dir: Path):
    with running_server(tmp_path, engine, media_root=str(media_dir)) as (srv, api):
        yield srv, api


def responders(resource: Any, suffix: str | None) -> set[str]:
    out = set()
    for m in ("get", "post", "put", "delete", "patch"):
        name = f"on_{m}" + (f"_{suffix}" if suffix else "")
        if callable(getattr(resource, name, None)):
            out.add(m)
    return out


def test_document_lists_exactly_the_routes(served) -> None:
    srv, api = served
    st, _, doc = api.call("GET", "/openapi.json")
    assert st == 200 and doc["openapi"].startswith("3.")
    routes = {}
    for template, factory, suffix in ROUTES:
        routes[template] = responders(factory(srv.service), suffix)
    documented = {p: {m for m in ops if m in ("get", "post", "put", "delete", "patch")} for p, ops in doc["paths"].items()}
    assert documented == routes


def check(doc: dict, path: str, method: str, status: int, body: Any) -> None:
    op = doc["paths"][path][method]
    resp = op["responses"].get(str(status))
    assert resp is not None, f"{method.upper()} {path} → {status} is not documented"
    schema = resp["content"]["application/json"]["schema"]
    validate(body, schema, doc, f"{method.upper()} {path} {status}")


def test_real_responses_match_the_document(served, short_video: Path, receiver: Receiver) -> None:
    srv, api = served
    doc = api.call("GET", "/openapi.json")[2]
    uri = short_video.as_uri()
    calls = [
        ("/v1/jobs", "get", "/v1/jobs?number=1", None),  # first: it must not lease the jobs below
        ("/v1/video/{video_id}", "post", "/v1/video/o1", video_body(uri, vframe={"mode": 0, "interval": 1})),
        ("/v1/video/{video_id}", "post", "/v1/video/o1", video_body(uri, **{"async": True})),
        ("/v1/video/{video_id}", "post", "/v1/video/o1", video_body(uri, ops=[{"op": "nope"}])),
        ("/v1/video/{video_id}", "post", "/v1/video/o1", video_body((short_video.parent / "x.mp4").as_uri())),
        ("/v1/jobs/video", "get", "/v1/jobs/video", None),
        ("/v1/jobs/video", "get", "/v1/jobs/video?status=NOPE", None),
        ("/v1/jobs/video/{job_id}", "get", "/v1/jobs/video/000000000000000000000000", None),
        ("/v1/vframe", "post", "/v1/vframe", {"data": {"uri": uri}, "callback": receiver.url("/vf/")}),
        ("/v1/jobs", "post", "/v1/jobs", {"uid": 1, "job": video_body(uri)}),
        ("/healthz", "get", "/healthz", None),
    ]
    job_id = None
    for template, method, path, body in calls:
        st, _, out = api.call(method.upper(), path, body)
        check(doc, template, method, st, out)
        if template == "/v1/video/{video_id}" and isinstance(out, dict) and "job" in out:
            job_id = out["job"]
    job = api.wait_status(job_id, {"FINISHED"})
    check(doc, "/v1/jobs/video/{job_id}", "get", 200, job)
    check(doc, "/v1/jobs/video", "get", 200, api.call("GET", "/v1/jobs/video")[2])
    st, _, out = api.call("POST", f"/v1/jobs/video/{job_id}?op=kill")
    check(doc, "/v1/jobs/video/{job_id}", "post", st, out)
    assert st == 400
    st, _, out = api.call("POST", "/v1/job/none/touch", {"lease": "x"})
    check(doc, "/v1/job/{job_id}/touch", "post", st, out)
    # and the schema really constrains: a job without its times does not validate
    with pytest.raises(SchemaError):
        check(doc, "/v1/jobs/video/{job_id}", "get", 200, {k: v for k, v in job.items() if k != "created_at"})


def test_the_document_asks_for_a_token_only_where_tokens_are_checked(tmp_path: Path) -> None:
    with running_server(tmp_path / "open", None) as (_, api):
        doc = api.call("GET", "/openapi.json")[2]
        assert "security" not in doc and "security" not in doc["paths"]["/healthz"]["get"]
    with running_server(tmp_path / "keyed", None, auth_keys="ak:sk") as (_, api):
        doc = api.call("GET", "/openapi.json")[2]
        assert doc["security"] == [{"qiniu": []}] and doc["paths"]["/healthz"]["get"]["security"] == []


@pytest.mark.parametrize("query", ["limit=", "status=", "limit=0", "status=NOPE"])
def test_blank_or_bad_list_parameters_are_refused(tmp_path: Path, query: str) -> None:
    """The schema says integer / one of the statuses; a blank value is neither (found by schemathesis)."""
    with running_server(tmp_path, None) as (_, api):
        st, _, out = api.call("GET", f"/v1/jobs/video?{query}")
        assert st == 400 and out == {"error": "invalid parameters"}, (st, out)
        assert api.call("GET", "/v1/jobs?number=")[0] == 400
