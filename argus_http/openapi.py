"""The OpenAPI 3 document of the service, built from small schema helpers (served at /openapi.json).

Its ``paths`` list exactly the routes of :data:`argus_http.app.ROUTES`, and the tests validate real
responses against these schemas, so the document cannot drift from the service unnoticed.
"""

from __future__ import annotations

from typing import Any

STATUSES = ["WAITING", "DOING", "RESCHEDULED", "FINISHED", "FAILED", "CANCELLED"]


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(props: dict[str, Any], required: list[str] | None = None, extra: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    if extra is not None:
        out["additionalProperties"] = extra
    return out


def _arr(items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": items}


S = {"type": "string"}
I = {"type": "integer"}
N = {"type": "number"}
B = {"type": "boolean"}
ANY: dict[str, Any] = {}
TIME = {"type": "string", "format": "date-time", "pattern": r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"}

SCHEMAS: dict[str, Any] = {
    "Error": _obj({"error": S, "detail": S}, ["error"], False),
    "Label": _obj({"label": S, "score": N}, ["label", "score"]),
    "Cut": _obj({"offset": I, "uri": S, "result": ANY}, ["offset"]),
    "Segment": _obj({"offset_begin": I, "offset_end": I, "labels": _arr(_ref("Label")), "cuts": _arr(_ref("Cut"))},
                    ["offset_begin", "offset_end", "labels", "cuts"]),
    "OpResult": _obj({"labels": _arr(_ref("Label")), "segments": _arr(_ref("Segment"))}, ["labels", "segments"]),
    "VideoResult": {"type": "object", "additionalProperties": _ref("OpResult"),
                    "description": "op name → {labels, segments}"},
    "VideoRequest": _obj({
        "data": _obj({"uri": S, "attribute": _obj({"id": S, "meta": ANY})}, ["uri"]),
        "params": _obj({"async": B, "vframe": _obj({"mode": I, "interval": N, "ss": N, "t": N}),
                        "segment": _obj({"mode": I, "interval": N}),
                        "save": _obj({"bucket": S, "zone": I, "prefix": S}), "hookURL": S,
                        "live": _obj({"timeout": N})}),
        "ops": _arr(_obj({"op": S, "hookURL": S, "hookURL_segment": S, "params": _obj({
            "labels": _arr(_obj({"label": S, "select": I, "score": N}, ["label"])),
            "terminate": _obj({"mode": I, "labels": {"type": "object", "additionalProperties": I}}),
            "ignore_empty_labels": B, "other": {"type": "object"}})}, ["op"])),
    }, ["data", "ops"]),
    "AsyncAccepted": _obj({"job": S}, ["job"], False),
    "Job": _obj({"id": S, "vid": S, "request": {"type": "object"}, "status": {"type": "string", "enum": STATUSES},
                 "result": ANY, "error": S, "created_at": TIME, "updated_at": TIME},
                ["id", "vid", "request", "status", "created_at", "updated_at"], False),
    "JobSummary": _obj({"id": S, "status": {"type": "string", "enum": STATUSES}, "created_at": TIME,
                        "updated_at": TIME}, ["id", "status", "created_at", "updated_at"], False),
    "KillResult": _obj({"status": {"type": "string", "enum": STATUSES}, "created_at": TIME, "updated_at": TIME},
                       ["status", "created_at", "updated_at"], False),
    "VframeTask": _obj({"id": S, "data": _obj({"uri": S}, ["uri"]),
                        "params": _obj({"mode": I, "interval": N, "ss": N, "t": N}),
                        "callback": {"type": "string", "description": "base URL; begin/cuts/end are appended"}},
                       ["data", "callback"]),
    "QueueSubmit": _obj({"uid": {"oneOf": [I, S]}, "job": _ref("VideoRequest")}, ["job"]),
    "QueueId": _obj({"id": S}, ["id"], False),
    "Lease": _obj({"id": S, "uid": {"oneOf": [I, S]}, "job": {"type": "object"}, "timeout": I,
                   "lease": {"type": "string", "description": "lease token; send it with touch/finish"},
                   "kind": {"type": "string", "enum": ["video", "vframe"]}, "vid": S, "attempts": I},
                  ["id", "uid", "job", "timeout", "lease"]),
    "LeaseToken": _obj({"lease": S}, ["lease"]),
    "Finish": _obj({"lease": S, "result": {"type": "object"}, "error": S, "retryable": B}, ["lease"]),
    "Events": _obj({"lease": S, "events": _arr(_obj({
        "type": {"type": "string", "enum": ["segment", "op", "callback"]}, "op": S, "index": I,
        "result": {"type": "object"}, "name": S, "url": S, "body": {"type": "object"}}, ["type"]))},
        ["lease", "events"]),
    "Touched": _obj({"timeout": I}, ["timeout"]),
    "Empty": _obj({}, None, False),
    "Group": _obj({"group": S, "faces": I, "version": I, "created": ANY, "updated": ANY, "meta": {"type": "object"},
                   "face_list": _arr({"type": "object"})}, ["group"]),
    "Health": _obj({"status": S, "database": B, "engine": B, "ops": _arr(S), "uptime_s": N,
                    "engine_health": _obj({"ok": B}, ["ok"])},
                   ["status", "database", "engine", "ops"]),
}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _resp(desc: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": desc}
    if schema is not None:
        out["content"] = _json_content(schema)
    return out


def _errors(*codes: int) -> dict[str, Any]:
    return {str(c): _resp("error", _ref("Error")) for c in codes}


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": S}


def _query(name: str, schema: dict[str, Any], desc: str = "") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}


def _body(schema: dict[str, Any], ctype: str = "application/json") -> dict[str, Any]:
    return {"required": True, "content": {ctype: {"schema": schema}}}


def _job_routes(kind: str) -> dict[str, Any]:
    return {
        f"/v1/jobs/{kind}": {"get": {
            "summary": f"List {kind} jobs, oldest first",
            "parameters": [_query("status", {"type": "string", "enum": STATUSES}),
                           _query("marker", S, "id of the last job of the previous page"),
                           _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100})],
            "responses": {"200": _resp("jobs", _arr(_ref("JobSummary"))), **_errors(400, 401)}}},
        f"/v1/jobs/{kind}/{{job_id}}": {
            "parameters": [_path_param("job_id")],
            "get": {"summary": f"Get a {kind} job",
                    "responses": {"200": _resp("the job", _ref("Job")), **_errors(401, 404)}},
            "post": {"summary": f"Kill a {kind} job (form op=kill, or ?op=kill)",
                     "parameters": [_query("op", {"type": "string", "enum": ["kill"]})],
                     "requestBody": {"required": False, "content": {
                         "application/x-www-form-urlencoded": {"schema": _obj({"op": {"type": "string",
                                                                                        "enum": ["kill"]}})}}},
                     "responses": {"200": _resp("cancelled", _ref("KillResult")), **_errors(400, 401, 404, 415)}},
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI 3.0 document."""
    queue_job = lambda summary, body, ok: {  # noqa: E731
        "parameters": [_path_param("job_id")],
        "post": {"summary": summary, "requestBody": _body(_ref(body)),
                 "responses": {"200": _resp("ok", _ref(ok)), **_errors(400, 401, 403, 409)}}}
    paths: dict[str, Any] = {
        "/v1/video/{video_id}": {
            "parameters": [_path_param("video_id")],
            "post": {"summary": "Analyse a video (sync, or async with params.async)",
                     "requestBody": _body(_ref("VideoRequest")),
                     "responses": {"200": _resp("sync result, or {job} when async",
                                                {"oneOf": [_ref("VideoResult"), _ref("AsyncAccepted")]}),
                                   **_errors(400, 401, 413, 415, 424, 500, 503)}}},
        **_job_routes("video"),
        "/v1/vframe": {"post": {"summary": "Submit a frames-only task (begin/cuts/end callbacks)",
                                "requestBody": _body(_ref("VframeTask")),
                                "responses": {"200": _resp("accepted", _ref("AsyncAccepted")),
                                              **_errors(400, 401, 413, 415)}}},
        **_job_routes("vframe"),
        "/v1/jobs": {
            "post": {"summary": "Queue API: add a job", "requestBody": _body(_ref("QueueSubmit")),
                     "responses": {"200": _resp("queued", _ref("QueueId")), **_errors(400, 401, 403)}},
            "get": {"summary": "Queue API: lease up to `number` jobs",
                    "parameters": [_query("number", {"type": "integer", "minimum": 1, "maximum": 100, "default": 1}),
                                   _query("kind", S, "comma-separated: video,vframe")],
                    "responses": {"200": _resp("leases", _arr(_ref("Lease"))), **_errors(400, 401, 403)}}},
        "/v1/job/{job_id}/touch": queue_job("Queue API: extend a lease", "LeaseToken", "Touched"),
        "/v1/job/{job_id}/finish": queue_job("Queue API: finish a leased job", "Finish", "Empty"),
        "/v1/job/{job_id}/events": queue_job("Queue API: report segments / op results / vframe callbacks",
                                             "Events", "Empty"),
        "/v1/job/{job_id}/release": queue_job("Queue API: give a lease back", "LeaseToken", "Empty"),
        "/v1/face/group": {"get": {"summary": "Face galleries of the caller",
                                   "responses": {"200": _resp("groups", _arr(_ref("Group"))), **_errors(401, 503)}}},
        "/v1/face/group/{gid}": {
            "parameters": [_path_param("gid")],
            "post": {"summary": "Create a face gallery", "requestBody": {"required": False, "content":
                     _json_content(_obj({"meta": {"type": "object"}}))},
                     "responses": {"200": _resp("created", _ref("Group")), **_errors(400, 401, 409, 503)}},
            "get": {"summary": "A gallery and its faces",
                    "responses": {"200": _resp("group", _ref("Group")), **_errors(400, 401, 404, 503)}},
            "delete": {"summary": "Delete a gallery",
                       "responses": {"200": _resp("deleted", _ref("Empty")), **_errors(400, 401, 404, 503)}}},
        "/v1/face/group/{gid}/add": {
            "parameters": [_path_param("gid")],
            "post": {"summary": "Enrol the one face of an image",
                     "requestBody": _body(_obj({"data": _obj({"uri": S, "attribute": _obj(
                         {"name": S, "id": S, "meta": {"type": "object"}}, ["name"])}, ["uri"])}, ["data"])),
                     "responses": {"200": _resp("face record", {"type": "object"}),
                                   **_errors(400, 401, 404, 409, 424, 503)}}},
        "/v1/face/group/{gid}/remove": {
            "parameters": [_path_param("gid")],
            "post": {"summary": "Remove faces by id or by name",
                     "requestBody": _body(_obj({"ids": _arr(S), "names": _arr(S)})),
                     "responses": {"200": _resp("removed", _obj({"removed": I}, ["removed"])),
                                   **_errors(400, 401, 404, 503)}}},
        "/v1/face/group/{gid}/search": {
            "parameters": [_path_param("gid")],
            "post": {"summary": "Search the faces of an image in a gallery",
                     "requestBody": _body(_obj({"data": _obj({"uri": S}, ["uri"]),
                                                "params": _obj({"threshold": N})}, ["data"])),
                     "responses": {"200": _resp("faces", _obj({"detections": _arr(_obj({
                         "boundingBox": _obj({"pts": _arr(N), "score": N}),
                         "value": {**_obj({"id": S, "name": S, "score": N, "review": B}), "nullable": True}}))},
                         ["detections"])),
                                   **_errors(400, 401, 404, 424, 503)}}},
        "/healthz": {"get": {"summary": "Liveness and readiness", "security": [],
                             "responses": {"200": _resp("ok", _ref("Health")), "503": _resp("down", _ref("Health"))}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "security": [],
                             "responses": {"200": {"description": "text exposition format",
                                                   "content": {"text/plain": {"schema": S}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "security": [],
                                  "responses": {"200": _resp("OpenAPI 3 document", {"type": "object"})}}},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Argus video analysis API", "version": "1.0.0",
                 "description": "CONTRACT §1, §7–§9. Errors are always {\"error\": message}."},
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {"qiniu": {"type": "apiKey", "in": "header", "name": "Authorization",
                                          "description": "Qiniu <AK>:<sign> (when auth is configured)"}},
        },
        "security": [{"qiniu": []}],
    }
