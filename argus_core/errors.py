"""Typed errors. Each carries the HTTP status and the exact message of CONTRACT §1/§2/§7.

The HTTP adapter maps :class:`ArgusError` to ``status`` + ``{"error": message}`` in one place; the CLI prints
``message`` and exits non-zero. Nothing else in the engine knows about HTTP.
"""

from __future__ import annotations

import msgspec


class ArgusError(Exception):
    """Base of every error a client may see. ``status`` is the documented HTTP status."""

    status: int = 500
    message: str = "internal error"

    def __init__(self, message: str | None = None, *, detail: str = "", public: bool = False) -> None:
        if message is not None:
            self.message = message
        #: extra context for logs; shown to clients (as ``detail``, CONTRACT §14) only when ``public``
        self.detail = detail
        #: the detail is written for the client and safe to show (no paths, addresses or internals)
        self.public = public
        super().__init__(self.message)

    def __str__(self) -> str:
        # What a traceback shows an embedder: the documented message, and why.
        return f"{self.message} ({self.detail})" if self.detail else self.message

    def __reduce__(self):  # keep message/detail across process boundaries (pickling)
        return (_rebuild, (type(self), self.message, self.detail, self.public))


def _rebuild(cls: type[ArgusError], message: str, detail: str, public: bool = False) -> ArgusError:
    err = cls(message, detail=detail)
    err.public = public
    return err


class InvalidRequest(ArgusError):
    """400 with one of the documented messages (``invalid parameters`` by default)."""

    status = 400
    message = "invalid parameters"


class EmptyOp(InvalidRequest):
    message = "empty op"


class BadOp(InvalidRequest):
    message = "bad op"


class InvalidMode(InvalidRequest):
    message = "invalid mode, allow mode is [0, 1]"


class InvalidInterval(InvalidRequest):
    def __init__(self, max_interval: float = 10, *, detail: str = "") -> None:
        bound = int(max_interval) if float(max_interval).is_integer() else max_interval
        super().__init__(f"invalid interval, allow interval is [0, {bound}]", detail=detail)

    def __reduce__(self):
        return (_rebuild, (InvalidRequest, self.message, self.detail))


class InvalidStartTime(InvalidRequest):
    message = "invalid starttime"


class InvalidDuration(InvalidRequest):
    message = "invalid duration"


class VideoNotFound(ArgusError):
    """The source is unreachable or does not exist (CONTRACT §2)."""

    status = 424
    message = "cannot find the video"


class CannotOpen(ArgusError):
    """The source exists but is not a decodable video (CONTRACT §2)."""

    status = 400
    message = "cannot open the file"


class VideoTooLong(InvalidRequest):
    """The video is longer than the server's max duration (CONTRACT §11)."""

    def __init__(self, max_seconds: float = 21600, *, detail: str = "") -> None:
        super().__init__(f"video too long, max duration is {int(max_seconds)} s", detail=detail)

    def __reduce__(self):
        return (_rebuild, (InvalidRequest, self.message, self.detail))


class OutOfMemory(ArgusError):
    status = 500
    message = "cannot allow memory"


class Cancelled(ArgusError):
    status = 499
    message = "context canceled"


class EngineError(ArgusError):
    """An internal failure (a crashed process, a broken model); the message is safe to show."""

    status = 500
    message = "internal error"


class Saturated(ArgusError):
    """Too many concurrent analyses; the client should retry later."""

    status = 503
    message = "server busy, retry later"


# -- face galleries (argus_core.faces.gallery) ------------------------------------------------------------------
class InvalidGroup(InvalidRequest):
    """A gallery (group) name that is empty, too long, or not letters/digits/``_``/``-``/``.``."""

    message = "invalid group name"


class MissingGroup(InvalidRequest):
    """``face_group_search`` without ``params.other.group`` (the documented 400, the reason as detail)."""

    def __init__(self, message: str | None = None, *, detail: str = "", public: bool = True) -> None:
        super().__init__(message, detail=detail or "face_group_search needs params.other.group: the name of a "
                                                   "face gallery", public=public)


class UnknownGroup(InvalidRequest):
    """``face_group_search`` naming a gallery that does not exist (400: the request is wrong, not a URL)."""

    def __init__(self, group: str = "", *, detail: str = "") -> None:
        super().__init__(detail=detail or (f"face_group_search: group {group!r} not found" if group
                                           else "group not found"), public=True)

    def __reduce__(self):
        return (_rebuild, (InvalidRequest, self.message, self.detail))


class GroupNotFound(ArgusError):
    status = 404
    message = "group not found"


class GroupExists(ArgusError):
    status = 409
    message = "group already exists"


class FaceNotFound(ArgusError):
    status = 404
    message = "face not found"


class FaceExists(ArgusError):
    status = 409
    message = "face id already exists"


class InvalidFace(InvalidRequest):
    """A face record the gallery cannot take (empty name, wrong embedding size …)."""

    message = "invalid face"


class BadImage(InvalidRequest):
    """The image given to add a face cannot be decoded."""

    message = "cannot decode image"


class NoFace(InvalidRequest):
    """Adding a face: the detector finds no face in the image."""

    message = "no face in image"


class ManyFaces(InvalidRequest):
    """Adding a face: the image shows several faces (crop it to the one person)."""

    message = "more than one face in image"


class ErrorWire(msgspec.Struct, frozen=True):
    """The one form an error takes across a process boundary (pipes, the queue): the class name, the
    documented message, and the detail. :func:`to_wire` / :func:`from_wire` convert."""

    kind: str
    message: str
    detail: str = ""


def to_wire(exc: BaseException) -> ErrorWire:
    """Any exception → its wire form; anything not an :class:`ArgusError` is an ``internal error``."""
    if isinstance(exc, ArgusError):
        return ErrorWire(type(exc).__name__, exc.message, exc.detail)
    return ErrorWire("EngineError", "internal error", f"{type(exc).__name__}: {exc}")


def from_wire(w: ErrorWire) -> ArgusError:
    """The typed error back (its documented status and message kept); unknown kinds → EngineError."""
    cls = globals().get(w.kind, EngineError)
    if not (isinstance(cls, type) and issubclass(cls, ArgusError)):
        cls = EngineError
    err = cls.__new__(cls)
    ArgusError.__init__(err, w.message, detail=w.detail)
    return err
