"""The OpenAPI 3.1 document of the service (served at /openapi.json), generated from the msgspec Structs of
:mod:`argus_http.schemas` and :mod:`argus_core.request` / :mod:`argus_core.result`.

Components come from :func:`msgspec.json.schema_components` (JSON Schema 2020-12, which OpenAPI 3.1 uses);
this module only says, per route, which Struct a body is, which Struct an answer is and which errors a route
can give. Its ``paths`` list exactly the routes of :data:`argus_http.app.ROUTES`, and the tests validate
real responses against the document, so it cannot drift from the service unnoticed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import schemas as S

REF = "#/components/schemas/{name}"


class Op(msgspec.Struct, frozen=True):
    """One documented responder: its summary, body type, answer type(s) and error statuses."""

    summary: str
    ok: Any = None
    body: Any = None
    errors: tuple[int, ...] = ()
    query: tuple[tuple[str, Any, str], ...] = ()
    body_required: bool = True
    body_media: str = "application/json"
    public: bool = False
    ok_status: int = 200
    ok_media: str = "application/json"  #: a ``str`` answer in another media type (the HTML report)
    also: tuple[tuple[int, Any], ...] = ()


def _list(t: Any) -> Any:
    return list[t]  # type: ignore[valid-type]


def _job_routes(kind: str) -> dict[str, dict[str, Op]]:
    return {
        f"/v1/jobs/{kind}": {"get": Op(
            f"List {kind} jobs, oldest first", _list(S.JobSummary), errors=(400, 401),
            query=(("status", S.Status, ""), ("marker", str, "id of the last job of the previous page"),
                   ("limit", S.Annotated[int, msgspec.Meta(ge=1, le=1000)], "default 100")))},
        f"/v1/jobs/{kind}/{{job_id}}": {
            "get": Op(f"Get a {kind} job", S.Job, errors=(401, 404)),
            "post": Op(f"Kill a {kind} job (form op=kill, or ?op=kill)", S.KillResult, S.Kill,
                       errors=(400, 401, 404, 415), query=(("op", S.KillOp, ""),),
                       body_required=False, body_media="application/x-www-form-urlencoded")},
    }


def _queue_job(summary: str, body: Any, ok: Any) -> dict[str, Op]:
    return {"post": Op(summary, ok, body, errors=(400, 401, 403, 409))}


#: template → method → Op. Path parameters are read from the template.
PATHS: dict[str, dict[str, Op]] = {
    "/v1/video/{video_id}": {"post": Op(
        "Analyse a video (sync, or async with params.async)", (S.VideoResult, S.AsyncAccepted),
        S.VideoRequest, errors=(400, 401, 409, 413, 415, 424, 500, 503))},
    **_job_routes("video"),
    "/v1/jobs/video/{job_id}/report": {"get": Op(
        "The job's timeline report: one self-contained HTML page (CONTRACT §14)", str, errors=(401, 404),
        ok_media="text/html")},
    "/v1/vframe": {"post": Op("Submit a frames-only task (begin/cuts/end callbacks)", S.AsyncAccepted,
                              S.VframeTask, errors=(400, 401, 413, 415))},
    **_job_routes("vframe"),
    "/v1/jobs": {
        "post": Op("Queue API: add a job", S.QueueId, S.QueueSubmit, errors=(400, 401, 403)),
        "get": Op("Queue API: lease up to `number` jobs", _list(S.LeaseView), errors=(400, 401, 403),
                  query=(("number", S.Annotated[int, msgspec.Meta(ge=1, le=100)], "default 1"),
                         ("kind", str, "comma-separated: video,vframe,abstract")))},
    "/v1/job/{job_id}/touch": _queue_job("Queue API: extend a lease", S.LeaseToken, S.Touched),
    "/v1/job/{job_id}/finish": _queue_job("Queue API: finish a leased job", S.Finish, S.Empty),
    "/v1/job/{job_id}/events": _queue_job("Queue API: report segments / op results / vframe callbacks",
                                          S.Events, S.Empty),
    "/v1/job/{job_id}/release": _queue_job("Queue API: give a lease back", S.LeaseToken, S.Empty),
    "/v1/videoAbstract": {
        "put": Op("Submit a video abstract (CONTRACT §12); with ?cancel&source= cancel the source's task instead",
                  (S.AbstractAccepted, S.Empty), S.AbstractSubmit, errors=(400, 401, 404, 409, 413, 415),
                  query=(("cancel", S.CancelFlag, ""), ("source", str, "with cancel: the task's source")),
                  body_required=False),
        "get": Op("The latest video abstract of a source (CONTRACT §12)", S.AbstractView, errors=(400, 401, 404),
                  query=(("source", str, "the source as submitted (URL-encoded)"),))},
    "/v1/face/group": {"get": Op("Face galleries of the caller", _list(S.Group), errors=(401, 503))},
    "/v1/face/group/{gid}": {
        "post": Op("Create a face gallery", S.Group, S.GroupCreate, errors=(400, 401, 409, 503),
                   body_required=False),
        "get": Op("A gallery and its faces", S.Group, errors=(400, 401, 404, 503)),
        "delete": Op("Delete a gallery", S.Empty, errors=(400, 401, 404, 503))},
    "/v1/face/group/{gid}/add": {"post": Op("Enrol the one face of an image", S.Object, S.FaceAdd,
                                            errors=(400, 401, 404, 409, 424, 503))},
    "/v1/face/group/{gid}/remove": {"post": Op("Remove faces by id or by name", S.Removed, S.FaceRemove,
                                               errors=(400, 401, 404, 503))},
    "/v1/face/group/{gid}/search": {"post": Op("Search the faces of an image in a gallery", S.FaceSearchResult,
                                               S.FaceSearch, errors=(400, 401, 404, 424, 503))},
    "/healthz": {"get": Op("Liveness and readiness", S.Health, public=True, also=((503, S.Health),))},
    "/metrics": {"get": Op("Prometheus metrics", None, public=True)},
    "/openapi.json": {"get": Op("This document", S.Object, public=True)},
}


def _types() -> list[Any]:
    """Every type the document refers to, in a fixed order (the order of the schema list)."""
    out: list[Any] = []
    for ops in PATHS.values():
        for op in ops.values():
            for t in (*(op.ok if isinstance(op.ok, tuple) else (op.ok,)), op.body,
                      *(t for _, t in op.also), *(t for _, t, _ in op.query)):
                if t is not None:
                    out.append(t)
    return out


def document(auth: bool = True) -> dict[str, Any]:
    """The OpenAPI 3.1 document. ``auth``: the server checks Qiniu tokens; without keys configured it
    accepts every request, and a document that still demanded a token would describe another server
    (schemathesis' ``ignored_auth`` check reads the requirement literally)."""
    types = [*S.DOCUMENTED, *_types()]
    refs, components = msgspec.json.schema_components(types, ref_template=REF)
    schema = dict(zip(map(id, types), refs))
    schema_of = lambda t: schema[id(t)]  # noqa: E731
    error = schema_of(S.Error)
    paths: dict[str, Any] = {}
    for template, ops in PATHS.items():
        item: dict[str, Any] = {}
        params = [p[1:-1] for p in template.split("/") if p.startswith("{")]
        if params:
            item["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                                  for p in params]
        for method, op in ops.items():
            if op.ok is None:
                ok: dict[str, Any] = {"description": "text exposition format",
                                      "content": {"text/plain": {"schema": {"type": "string"}}}}
            else:
                ok_schema = {"oneOf": [schema_of(t) for t in op.ok]} if isinstance(op.ok, tuple) \
                    else schema_of(op.ok)
                ok = {"description": "ok", "content": {op.ok_media: {"schema": ok_schema}}}
            responses = {str(op.ok_status): ok}
            for status, t in op.also:
                responses[str(status)] = {"description": "also", "content": {"application/json": {
                    "schema": schema_of(t)}}}
            for status in op.errors:
                responses[str(status)] = {"description": "error",
                                          "content": {"application/json": {"schema": error}}}
            out: dict[str, Any] = {"summary": op.summary, "responses": responses}
            if op.query:
                out["parameters"] = [{"name": n, "in": "query", "required": False, "schema": schema_of(t),
                                      "description": d} for n, t, d in op.query]
            if op.body is not None:
                out["requestBody"] = {"required": op.body_required,
                                      "content": {op.body_media: {"schema": schema_of(op.body)}}}
            if op.public and auth:
                out["security"] = []
            item[method] = out
        paths[template] = item
    return {
        "openapi": "3.1.0",
        "info": {"title": "Argus video analysis API", "version": "1.0.0",
                 "description": "CONTRACT §1, §7–§9, §12. Errors are always {\"error\": message}."},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"qiniu": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "Qiniu <AK>:<sign> (when auth is configured)"}},
        },
        **({"security": [{"qiniu": []}]} if auth else {}),
    }
