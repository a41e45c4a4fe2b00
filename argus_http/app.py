"""The Falcon application: every route of CONTRACT §1 and §7–§9, plus /healthz, /metrics and /openapi.json.

Errors are mapped in exactly one place (:func:`_on_error`): an :class:`~argus_core.errors.ArgusError` gives
its status and ``{"error": message}``; Falcon's own errors (unknown route, wrong method, ...) get the same
shape; anything else is logged with its traceback and answered ``500 {"error": "internal error"}``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable
from urllib.parse import parse_qs

import falcon
import msgspec

from argus_core.errors import ArgusError, InvalidRequest, Saturated
from argus_core.request import parse_request

from . import db as dbm
from . import openapi, outbox, vframe
from .auth import Authenticator
from .wire_checks import checked_events
from .config import KeyPair, Settings
from .db import Tables
from .faces import GroupResource, GroupsResource, scoped_request
from .errors import (BodyTooLarge, Forbidden, MethodNotAllowed, RouteNotFound, Unauthorized,
                     UnsupportedMediaType)
from .jobqueue import JobQueue
from .metrics import Metrics, render
from .save import CutSaver, FrameStore
from .sources import check_hook, check_hooks, check_source, engine_source, with_source
from .ssrf import Guard

log = logging.getLogger("argus.http")

VIDEO_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,256}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
JSON_TYPE = "application/json"
#: Paths served without a token even when auth is on (probes and docs).
PUBLIC = frozenset({"/healthz", "/metrics", "/openapi.json"})
#: Worker-facing routes carry results, which can be much larger than a request.
WORKER_BODY_LIMIT = 64 * 1024 * 1024


class Service:
    """What the routes need: settings, the queue, the engine (None on an API-only server) and helpers."""

    def __init__(self, settings: Settings, tables: Tables, queue: JobQueue, engine: Any = None, *,
                 guard: Guard | None = None, metrics: Metrics | None = None, store: FrameStore | None = None,
                 on_submit: Callable[[], None] | None = None) -> None:
        self.s = settings
        self.t = tables
        self.queue = queue
        self.engine = engine
        self.guard = guard or Guard(settings.ssrf_allow)
        self.auth = Authenticator(settings.auth_keys, max_skew=settings.auth_max_skew or float("inf"),
                                  require_date=settings.auth_require_date)
        self.metrics = metrics or Metrics()
        self.store = store
        self.on_submit = on_submit or (lambda: None)
        self.sync_slots = threading.BoundedSemaphore(settings.sync_concurrency)
        self.started = time.time()

    def known_ops(self) -> set[str] | None:
        return None if self.engine is None else set(self.engine.known_ops())

    def check_params(self, parsed: Any) -> None:
        """Each op's check of its ``params.other`` (400 + detail) before the job is queued (issue 10)."""
        check = getattr(self.engine, "check_params", None)
        if check is not None:
            check(parsed)


# -- helpers ---------------------------------------------------------------------------------------------
def _json(resp: falcon.Response, obj: Any, status: int = 200) -> None:
    resp.status = status
    resp.content_type = JSON_TYPE
    resp.data = msgspec.json.encode(obj)


def _body_json(req: falcon.Request, *, required: bool = True) -> Any:
    """The request body as JSON (415 for another declared type, 400 for bad JSON)."""
    ctype = (req.content_type or "").split(";")[0].strip().lower()
    body: bytes = req.context.body
    if ctype and ctype != JSON_TYPE:
        raise UnsupportedMediaType()
    if not body.strip():
        if required:
            raise InvalidRequest(detail="empty body")
        return {}
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise InvalidRequest(detail="body is not JSON") from None
    except RecursionError:  # msgspec stops at ~1000 levels of nesting (issue 10: was a 500)
        raise InvalidRequest(detail="JSON nested too deeply", public=True) from None


def _uid(req: falcon.Request) -> str | None:
    """The caller's uid for scoping, or None when auth is off (everyone sees every job)."""
    key: KeyPair | None = req.context.key
    return None if key is None else key.uid


def _require_queue_role(req: falcon.Request, svc: Service) -> None:
    key: KeyPair | None = req.context.key
    if svc.auth.enabled and (key is None or not key.queue):
        raise Forbidden()


def _int_param(req: falcon.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = req.get_param(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(detail=f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise InvalidRequest(detail=f"{name} out of range [{lo}, {hi}]")
    return value


# -- middleware ------------------------------------------------------------------------------------------
class Gate:
    """Reads the body (size limit), authenticates, and records metrics/logs for every request."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.monotonic()
        req.context.key = None
        limit = WORKER_BODY_LIMIT if req.path.startswith("/v1/job/") or req.path == "/v1/jobs" \
            else self.svc.s.max_body
        if req.content_length is not None and req.content_length > limit:
            raise BodyTooLarge()
        body = req.bounded_stream.read(limit + 1) if req.method in ("POST", "PUT", "PATCH") else b""
        if len(body) > limit:
            raise BodyTooLarge()
        req.context.body = body
        if self.svc.auth.enabled and req.path not in PUBLIC:
            env = req.env
            raw_path = env.get("REQUEST_URI", "").split("?", 1)[0] or req.path
            headers = {k[5:]: v for k, v in env.items() if k.startswith("HTTP_X_QINIU_")}
            key = self.svc.auth.verify(req.get_header("Authorization") or "", req.method, raw_path,
                                       env.get("QUERY_STRING", ""), req.get_header("Host") or "",
                                       req.get_header("Content-Type") or "", body, headers)
            if key is None:
                raise Unauthorized()
            req.context.key = key

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        status = int(str(resp.status).split()[0]) if not isinstance(resp.status, int) else resp.status
        route = req.uri_template or "unmatched"
        self.svc.metrics.request(req.method, route, status)
        started = getattr(req.context, "started", None)
        log.info("request", extra={"method": req.method, "path": req.path, "route": route, "status": status,
                                   "ms": round((time.monotonic() - started) * 1000, 1) if started else None})


# -- error mapping (the one place) -------------------------------------------------------------------------
_FALCON_MESSAGES = {
    400: InvalidRequest.message, 401: Unauthorized.message, 403: Forbidden.message, 404: RouteNotFound.message,
    405: MethodNotAllowed.message, 413: BodyTooLarge.message, 415: UnsupportedMediaType.message,
}


def _on_error(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict) -> None:
    headers: dict[str, str] = {}
    if isinstance(ex, ArgusError):
        status, message = ex.status, ex.message
        if status >= 500 or ex.detail:
            log.info("request failed", extra={"path": req.path, "status": status, "error": message,
                                              "detail": ex.detail})
    elif isinstance(ex, falcon.HTTPError):
        status = ex.status_code
        message = _FALCON_MESSAGES.get(status, (ex.title or "error").lower())
        headers = dict(ex.headers or {})
    else:
        log.exception("unhandled error", extra={"path": req.path})
        status, message = 500, "internal error"
    for k, v in headers.items():
        resp.set_header(k, v)
    out = {"error": message}
    if isinstance(ex, ArgusError) and ex.public and ex.detail:
        out["detail"] = ex.detail  # CONTRACT §14: a reason written for the client
    _json(resp, out, status)


# -- resources -------------------------------------------------------------------------------------------
class VideoResource:
    """``POST /v1/video/<video_id>`` (CONTRACT §1, §7)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_post(self, req: falcon.Request, resp: falcon.Response, video_id: str) -> None:
        svc = self.svc
        body = _body_json(req)
        if not VIDEO_ID.match(video_id):
            raise InvalidRequest(detail="bad video_id")
        if not isinstance(body, dict):
            raise InvalidRequest(detail="body must be an object")
        parsed = parse_request(body, svc.known_ops(), max_interval=svc.s.max_interval)
        svc.check_params(parsed)
        check_source(parsed.data.uri, svc.s, svc.guard)
        if parsed.params.async_:
            check_hooks(parsed, svc.guard)
            job_id = svc.queue.submit(_uid(req) or "", body, vid=video_id)
            svc.on_submit()
            _json(resp, {"job": job_id})
            return
        save = parsed.params.save
        self._sync(resp, scoped_request(body, _uid(req)), parsed.data.uri, save.prefix if save is not None else None, save is not None,
                   video_id)

    def _sync(self, resp: falcon.Response, body: dict[str, Any], uri: str, prefix: str | None, save: bool,
              video_id: str) -> None:
        svc = self.svc
        if svc.engine is None:
            raise Saturated("sync analysis is not available on this server")
        if not svc.sync_slots.acquire(timeout=svc.s.sync_wait):
            svc.metrics.add("sync_rejected")
            raise Saturated()
        svc.metrics.add("sync_inflight")
        try:
            source = engine_source(uri, svc.s, svc.guard)
            result = svc.engine.analyze(with_source(body, source))
            if save and svc.store is not None:
                # §10: kept cuts as JPEG; still inside the slot, as it decodes the video again.
                saver = CutSaver(svc.store, source, prefix, video_id,
                                 getattr(svc.engine, "source_options", None))
                try:
                    saver.job_result(result)
                finally:
                    saver.close()
        finally:
            svc.metrics.add("sync_inflight", -1)
            svc.sync_slots.release()
        _json(resp, result)


class JobsResource:
    """``GET /v1/jobs/video?status=&marker=&limit=`` and ``GET /v1/jobs/vframe?...``."""

    def __init__(self, svc: Service, kind: str) -> None:
        self.svc, self.kind = svc, kind

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        status = req.get_param("status") or None
        if status is not None and status not in dbm.STATUSES:
            raise InvalidRequest(detail="unknown status")
        limit = _int_param(req, "limit", 100, 1, 1000)
        marker = req.get_param("marker") or None
        _json(resp, self.svc.queue.list(_uid(req), status, marker, limit, kind=self.kind))


class JobResource:
    """``GET /v1/jobs/video/<id>`` and the kill ``POST /v1/jobs/video/<id>`` (form ``op=kill``)."""

    def __init__(self, svc: Service, kind: str) -> None:
        self.svc, self.kind = svc, kind

    def on_get(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        if not JOB_ID.match(job_id):
            raise _not_found()
        _json(resp, self.svc.queue.get(job_id, _uid(req), kind=self.kind))

    def on_post(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        op = req.get_param("op")
        if op is None:
            ctype = (req.content_type or "").split(";")[0].strip().lower()
            raw: bytes = req.context.body
            if ctype == JSON_TYPE:
                data = _body_json(req, required=False)
                op = data.get("op") if isinstance(data, dict) else None
            elif ctype in ("", "application/x-www-form-urlencoded"):
                op = (parse_qs(raw.decode("utf-8", "replace")).get("op") or [None])[0]
            else:
                raise UnsupportedMediaType()
        if op != "kill":
            raise InvalidRequest(detail="op must be kill")
        if not JOB_ID.match(job_id):
            raise _not_found()
        # Make sure the job is of this kind (and the caller's) before touching it.
        self.svc.queue.get(job_id, _uid(req), kind=self.kind)
        _json(resp, self.svc.queue.cancel(job_id, _uid(req)))


def _not_found() -> ArgusError:
    from .errors import JobNotFound

    return JobNotFound()


class VframeResource:
    """``POST /v1/vframe``: submit a frames-only task (CONTRACT §9)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        svc = self.svc
        task = _body_json(req)
        if not isinstance(task, dict):
            raise InvalidRequest(detail="body must be an object")
        vframe.validate(task, svc.s.max_interval)
        check_source(task["data"]["uri"], svc.s, svc.guard)
        check_hook(task["callback"], svc.guard)
        vid = str(task.get("id") or "")
        if vid and not VIDEO_ID.match(vid):
            raise InvalidRequest(detail="bad id")
        job_id = svc.queue.submit(_uid(req) or "", task, vid=vid, kind="vframe")
        svc.on_submit()
        _json(resp, {"job": job_id})


# -- queue API (CONTRACT §8) -----------------------------------------------------------------------------------
class QueueJobsResource:
    """``POST /v1/jobs {uid, job}`` → ``{id}``; ``GET /v1/jobs?number=N`` leases up to N jobs."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        svc = self.svc
        _require_queue_role(req, svc)
        body = _body_json(req)
        if not isinstance(body, dict) or not isinstance(body.get("job"), dict):
            raise InvalidRequest(detail="expected {uid, job}")
        uid = body.get("uid", "")
        if not isinstance(uid, (int, str)) or isinstance(uid, bool):
            raise InvalidRequest(detail="uid must be an integer or a string")
        job = body["job"]
        parsed = parse_request(job, svc.known_ops(), max_interval=svc.s.max_interval)
        svc.check_params(parsed)
        check_source(parsed.data.uri, svc.s, svc.guard)
        check_hooks(parsed, svc.guard)
        vid = (parsed.data.attribute.id if parsed.data.attribute else None) or ""
        if vid and not VIDEO_ID.match(vid):
            raise InvalidRequest(detail="bad data.attribute.id")
        job_id = svc.queue.submit(str(uid), job, vid=vid)
        svc.on_submit()
        _json(resp, {"id": job_id})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        svc = self.svc
        _require_queue_role(req, svc)
        number = _int_param(req, "number", 1, 1, 100)
        kinds = tuple(k for k in (req.get_param("kind") or "video,vframe").split(",") if k)
        if not set(kinds) <= {"video", "vframe"}:
            raise InvalidRequest(detail="unknown kind")
        owner = f"remote:{req.remote_addr}"
        leases = svc.queue.claim(owner, number, kinds)
        _json(resp, [{"id": l.job_id, "uid": int(l.uid) if l.uid.isdigit() else l.uid, "job": l.request,
                      "timeout": int(l.timeout), "lease": l.token, "kind": l.kind, "vid": l.vid,
                      "attempts": l.attempts} for l in leases])


def _lease_of(req: falcon.Request, body: Any) -> str:
    token = req.get_param("lease") or (body.get("lease") if isinstance(body, dict) else None)
    if not isinstance(token, str) or not token:
        from .errors import LeaseLost

        raise LeaseLost()
    return token


class QueueJobResource:
    """``POST /v1/job/<id>/touch|finish`` (CONTRACT §8), plus ``events`` and ``release`` used by
    ``argus worker --queue-url`` to report segments/op results and to give a lease back."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def _prelude(self, req: falcon.Request) -> tuple[dict[str, Any], str]:
        _require_queue_role(req, self.svc)
        body = _body_json(req, required=False)
        if not isinstance(body, dict):
            raise InvalidRequest(detail="body must be an object")
        return body, _lease_of(req, body)

    @staticmethod
    def _check(ok: bool) -> None:
        if not ok:
            from .errors import LeaseLost

            raise LeaseLost()

    def on_post_touch(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        _, token = self._prelude(req)
        self._check(self.svc.queue.touch(job_id, token))
        _json(resp, {"timeout": int(self.svc.s.lease_seconds)})

    def on_post_finish(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        body, token = self._prelude(req)
        error = body.get("error")
        result = body.get("result")
        if error is not None and not isinstance(error, str):
            raise InvalidRequest(detail="error must be a string")
        if error is None and not isinstance(result, dict):
            raise InvalidRequest(detail="finish needs {result} or {error}")
        retry = bool(body.get("retryable", False))
        self._check(self.svc.queue.finish(job_id, token, result=result, error=error, retryable=retry))
        _json(resp, {})

    def on_post_events(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        body, token = self._prelude(req)
        events = checked_events(body.get("events"))
        q = self.svc.queue
        for ev in events:
            if not isinstance(ev, dict):
                raise InvalidRequest(detail="bad event")
            kind = ev.get("type")
            if kind == "segment":
                ok = q.record_segment(job_id, token, str(ev.get("op")), int(ev.get("index", 0)),
                                      ev.get("result") or {})
            elif kind == "op":
                ok = q.record_op(job_id, token, str(ev.get("op")), ev.get("result") or {})
            elif kind == "callback":
                ok = self._vframe_callback(job_id, token, ev)
            else:
                raise InvalidRequest(detail="unknown event type")
            self._check(ok)
        _json(resp, {})

    def _vframe_callback(self, job_id: str, token: str, ev: dict[str, Any]) -> bool:
        # A remote worker may only post to the callback base its job was submitted with.
        job = self.svc.queue.get(job_id, None, kind="vframe")
        base = str(job["request"].get("callback", ""))
        url = str(ev.get("url", ""))
        if not base or not url.startswith(base if base.endswith("/") else base + "/"):
            raise InvalidRequest(detail="callback URL outside the task's callback base")
        return self.svc.queue.record_callback(job_id, token, str(ev.get("name")), url, ev.get("body") or {})

    def on_post_release(self, req: falcon.Request, resp: falcon.Response, job_id: str) -> None:
        _, token = self._prelude(req)
        self._check(self.svc.queue.release(job_id, token))
        _json(resp, {})


# -- operations ------------------------------------------------------------------------------------------------
def engine_health(engine: Any) -> dict[str, Any] | None:
    """The engine's own readiness (``Engine.health``; None without an engine). A probe that raises is down."""
    probe = getattr(engine, "health", None)
    if probe is None:
        return None
    try:
        return dict(probe())
    except Exception as exc:
        log.exception("health: engine probe failed")
        return {"ok": False, "error": type(exc).__name__}


class HealthResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        svc = self.svc
        db_ok = True
        try:
            svc.t.Job.select(svc.t.Job.seq).limit(1).execute()
        except Exception:
            log.exception("health: database unavailable")
            db_ok = False
        ops = sorted(svc.known_ops() or [])
        engine = engine_health(svc.engine)
        ok = db_ok and (engine is None or engine["ok"])
        body = {"status": "ok" if ok else "unavailable", "database": db_ok,
                "engine": svc.engine is not None, "ops": ops,
                "uptime_s": round(time.time() - svc.started, 1)}
        if engine is not None:
            body["engine_health"] = engine
        _json(resp, body, 200 if ok else 503)


class MetricsResource:
    def __init__(self, svc: Service) -> None:
        self.svc = svc

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        text = render(self.svc.metrics, self.svc.queue.counts(), outbox.stats(self.svc.t))
        resp.content_type = "text/plain; version=0.0.4; charset=utf-8"
        resp.data = text.encode()


class OpenAPIResource:
    def __init__(self, svc: Service) -> None:
        self.doc = msgspec.json.encode(openapi.document())

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = JSON_TYPE
        resp.data = self.doc


#: (URI template, resource factory, suffix). The OpenAPI document lists exactly these (a test checks it).
ROUTES: list[tuple[str, Callable[[Service], Any], str | None]] = [
    ("/v1/video/{video_id}", VideoResource, None),
    ("/v1/jobs/video", lambda s: JobsResource(s, "video"), None),
    ("/v1/jobs/video/{job_id}", lambda s: JobResource(s, "video"), None),
    ("/v1/vframe", VframeResource, None),
    ("/v1/jobs/vframe", lambda s: JobsResource(s, "vframe"), None),
    ("/v1/jobs/vframe/{job_id}", lambda s: JobResource(s, "vframe"), None),
    ("/v1/jobs", QueueJobsResource, None),
    ("/v1/job/{job_id}/touch", QueueJobResource, "touch"),
    ("/v1/job/{job_id}/finish", QueueJobResource, "finish"),
    ("/v1/job/{job_id}/events", QueueJobResource, "events"),
    ("/v1/job/{job_id}/release", QueueJobResource, "release"),
    ("/v1/face/group", GroupsResource, None),
    ("/v1/face/group/{gid}", GroupResource, None),
    ("/v1/face/group/{gid}/add", GroupResource, "add"),
    ("/v1/face/group/{gid}/remove", GroupResource, "remove"),
    ("/v1/face/group/{gid}/search", GroupResource, "search"),
    ("/healthz", HealthResource, None),
    ("/metrics", MetricsResource, None),
    ("/openapi.json", OpenAPIResource, None),
]


def create_app(svc: Service) -> falcon.App:
    """The WSGI application."""
    app = falcon.App(middleware=[Gate(svc)], media_type=JSON_TYPE)
    app.req_options.strip_url_path_trailing_slash = True
    app.add_error_handler(Exception, _on_error)
    app.add_error_handler(falcon.HTTPError, _on_error)
    shared: dict[Any, Any] = {}
    for template, factory, suffix in ROUTES:
        # One resource object per factory (the queue job routes share one).
        res = shared.get(factory)
        if res is None:
            res = shared[factory] = factory(svc)
        if suffix:
            app.add_route(template, res, suffix=suffix)
        else:
            app.add_route(template, res)
    return app
