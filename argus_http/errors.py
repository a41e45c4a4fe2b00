"""Errors only the service raises. All are :class:`argus_core.errors.ArgusError`, so the one handler in
:mod:`argus_http.app` turns every failure into ``status`` + ``{"error": message}`` (CONTRACT §7)."""

from __future__ import annotations

from argus_core.errors import ArgusError, InvalidRequest


class JobNotFound(ArgusError):
    """Unknown job, or a job of another user (never reveal which)."""

    status = 404
    message = "job not found"


class AbstractNotFound(ArgusError):
    """No video abstract of this source for the caller (another key's source reads the same, CONTRACT §12)."""

    status = 404
    message = "video abstract not found"


class SourceBusy(ArgusError):
    """CONTRACT §12: the source is being analysed (PROVISIONING or PROCESSING); it may be submitted again
    once that task has ended, or after cancelling it."""

    status = 409
    message = "the source is being analysed"


class CannotCancel(ArgusError):
    status = 400
    message = "fail to cancel job"


class LeaseLost(ArgusError):
    """Touch/finish by a worker that no longer holds the job's lease (CONTRACT §8)."""

    status = 409
    message = "lease lost"


class Unauthorized(ArgusError):
    status = 401
    message = "bad token"


class Forbidden(ArgusError):
    status = 403
    message = "forbidden"


class RouteNotFound(ArgusError):
    status = 404
    message = "not found"


class MethodNotAllowed(ArgusError):
    status = 405
    message = "method not allowed"


class BodyTooLarge(ArgusError):
    status = 413
    message = "request body too large"


class UnsupportedMediaType(ArgusError):
    status = 415
    message = "unsupported media type"


class UnsafeURL(InvalidRequest):
    """A URL refused by the SSRF guard: a 400 ``invalid parameters`` to the client, the reason in logs."""


class IdempotencyConflict(ArgusError):
    """The ``Idempotency-Key`` was used with another body within its window (Stripe/AWS semantics)."""

    status = 409
    message = "idempotency key reused with a different request"
