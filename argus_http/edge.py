"""The HTTP edge: what every request passes through before and after its resource.

- :class:`Gate` (middleware) reads the body once (size limit), authenticates, and records metrics/logs.
- :data:`JSON` is Falcon's own JSON media handler running on msgspec (Falcon's "msgspec" recipe); every
  response body, errors included, is encoded by it.
- :func:`read_body` decodes the body, already read by the Gate (the signature covers its bytes, so Falcon's
  stream cannot be read again), into the resource's msgspec Struct (:mod:`argus_http.schemas`).
- :func:`on_error` is the one place where exceptions become HTTP answers, by exception type
  (:data:`ERRORS`): ``status`` + ``{"error": message}`` always, a traceback never (CONTRACT §7).
"""

from __future__ import annotations

import functools
import logging
import re
import time
from typing import Any, Callable, TypeVar

import falcon
import falcon.media
import msgspec

from argus_core.errors import ArgusError, InvalidRequest

from .config import KeyPair
from .errors import BodyTooLarge, Forbidden, MethodNotAllowed, RouteNotFound, Unauthorized, UnsupportedMediaType
from .service import Service

log = logging.getLogger("argus.http")

T = TypeVar("T")
JSON_TYPE = falcon.MEDIA_JSON
JSON = falcon.media.JSONHandler(dumps=msgspec.json.Encoder().encode, loads=msgspec.json.decode)
#: Paths served without a token even when auth is on (probes and docs).
PUBLIC = frozenset({"/healthz", "/metrics", "/openapi.json"})
#: Worker-facing routes carry results, which can be much larger than a request.
WORKER_BODY_LIMIT = 64 * 1024 * 1024


# -- bodies and parameters -------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def _decoder(type_: Any) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(type_)


def media_type(req: falcon.Request) -> str:
    return (req.content_type or "").split(";")[0].strip().lower()


def read_body(req: falcon.Request, type_: type[T] | Any, *, required: bool = True) -> T:
    """The request body decoded into ``type_``: 415 for another declared type, 400 for an empty body
    (when ``required``; else the type's defaults), for bad JSON, or for JSON of the wrong shape."""
    ctype = media_type(req)
    body: bytes = req.context.body
    if ctype and ctype != JSON_TYPE:
        raise UnsupportedMediaType()
    if not body.strip():
        if required:
            raise InvalidRequest(detail="empty body")
        body = b"{}"
    try:
        return _decoder(type_).decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidRequest(detail=str(exc), public=True) from None  # about the caller's own body
    except msgspec.DecodeError:
        raise InvalidRequest(detail="body is not JSON") from None
    except RecursionError:  # msgspec stops at ~1000 levels of nesting (issue 10: was a 500)
        raise InvalidRequest(detail="JSON nested too deeply", public=True) from None


def caller_uid(req: falcon.Request) -> str | None:
    """The caller's uid for scoping, or None when auth is off (everyone sees every job)."""
    key: KeyPair | None = req.context.key
    return None if key is None else key.uid


def require_queue_role(req: falcon.Request, svc: Service) -> None:
    key: KeyPair | None = req.context.key
    if svc.auth.enabled and (key is None or not key.queue):
        raise Forbidden()


def int_param(req: falcon.Request, name: str, default: int, lo: int, hi: int) -> int:
    """An integer query parameter in ``[lo, hi]``; ``default`` when absent. Present but blank (``?limit=``)
    is not an integer: 400, as the published schema says (schemathesis found it accepted)."""
    raw = req.get_param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(detail=f"{name} must be an integer") from None
    if not lo <= value <= hi:
        raise InvalidRequest(detail=f"{name} out of range [{lo}, {hi}]")
    return value


def answer(resp: falcon.Response, obj: Any, status: int = 200) -> None:
    """A JSON answer (through :data:`JSON`)."""
    resp.status = status
    resp.content_type = JSON_TYPE
    resp.media = obj


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
Mapped = tuple[int, str, dict[str, str]]

_FALCON_MESSAGES = {
    400: InvalidRequest.message, 401: Unauthorized.message, 403: Forbidden.message, 404: RouteNotFound.message,
    405: MethodNotAllowed.message, 413: BodyTooLarge.message, 415: UnsupportedMediaType.message,
}


def _argus_error(req: falcon.Request, ex: ArgusError) -> Mapped:
    if ex.status >= 500 or ex.detail:
        log.info("request failed", extra={"path": req.path, "status": ex.status, "error": ex.message,
                                          "detail": ex.detail})
    return ex.status, ex.message, {}


def _falcon_error(req: falcon.Request, ex: falcon.HTTPError) -> Mapped:
    status = ex.status_code
    return status, _FALCON_MESSAGES.get(status, (ex.title or "error").lower()), dict(ex.headers or {})


def _unexpected(req: falcon.Request, ex: Exception) -> Mapped:
    log.exception("unhandled error", extra={"path": req.path})
    return 500, "internal error", {}


#: Exception type → (status, message, headers); the most specific class of an exception's MRO wins.
ERRORS: dict[type[BaseException], Callable[[falcon.Request, Any], Mapped]] = {
    ArgusError: _argus_error,
    falcon.HTTPError: _falcon_error,
    Exception: _unexpected,
}


def on_error(req: falcon.Request, resp: falcon.Response, ex: Exception, params: dict) -> None:
    mapper = next(ERRORS[c] for c in type(ex).__mro__ if c in ERRORS)
    status, message, headers = mapper(req, ex)
    for k, v in headers.items():
        resp.set_header(k, v)
    body = {"error": message}
    # The documented message stays as it is; a client's own mistake (4xx) also says why. Server-side
    # details (5xx) stay in the log: they may name internals.
    # Only details written for clients (``public``) reach them: others may name paths, addresses or
    # internals and stay in the log. (The CLI, a local user's tool, prints every detail.)
    if isinstance(ex, ArgusError) and ex.detail and status < 500 and ex.public:
        body["detail"] = ex.detail
    answer(resp, body, status)


# -- identifiers in paths and bodies -----------------------------------------------------------------------
VIDEO_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,256}$")
JOB_ID = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
