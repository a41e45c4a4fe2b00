"""Where a video may come from and where callbacks may go: the service's policy on top of the engine's
request validation (CONTRACT §1, §11).

- ``file://`` only below the configured media root (symlinks resolved; default: refused). Bare paths,
  which the engine accepts from embedders, are refused over HTTP.
- Network sources and hook URLs pass the SSRF guard; http(s) sources have their redirects followed hop
  by hop before the engine opens them, and FFmpeg then fetches them through :mod:`argus_http.net.egress`,
  which checks every further connection the same way. rtmp/rtsp/srt hosts are resolved once when the job
  runs and the engine gets a URI pinned to the checked addresses (:meth:`.ssrf.Guard.pinned`).
"""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import unquote, urlsplit

from argus_core.errors import InvalidRequest
from argus_core.media.source import PINNED_SCHEMES, require_protocol
from argus_core.request import VideoRequest

from ..config import Settings
from ..errors import UnsafeURL
from .ssrf import Guard

NETWORK_SCHEMES = frozenset({"http", "https", "rtmp", "rtsp", "srt"})
HOOK_SCHEMES = frozenset({"http", "https"})


@functools.lru_cache(maxsize=8)
def _real_root(media_root: str) -> str:
    """The configured media root with its symlinks resolved, once: ``realpath`` makes a system call per
    path component, and every submit of a ``file://`` URI checks against the root."""
    return os.path.realpath(media_root)


def local_file(uri: str, media_root: str) -> str:
    """The absolute path of a ``file://`` URI inside ``media_root``; raises ``invalid parameters``."""
    if not media_root:
        raise InvalidRequest(detail="file:// URIs are disabled (no media root configured)", public=True)
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise InvalidRequest(detail="file:// URI with a host")
    root = _real_root(media_root)
    path = os.path.realpath(unquote(parts.path))
    if os.path.commonpath([root, path]) != root:
        raise InvalidRequest(detail="file:// URI outside the media root")
    return path


def check_source(uri: str, settings: Settings, guard: Guard) -> None:
    """Fast checks at submit time (no network traffic beyond DNS)."""
    require_protocol(uri)
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "file":
        local_file(uri, settings.media_root)
    elif scheme in NETWORK_SCHEMES:
        guard.check(uri)
    else:
        raise InvalidRequest(detail=f"scheme {scheme!r} not allowed here")


def engine_source(uri: str, settings: Settings, guard: Guard) -> str:
    """The URI to hand to the engine: a checked local path, or the checked end of the redirect chain."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme == "file":
        return local_file(uri, settings.media_root)
    if scheme in ("http", "https"):
        return guard.final_url(uri, timeout=settings.callback_timeout)
    if scheme in PINNED_SCHEMES:
        # rtmp/rtsp/srt: no proxy can stand in front of FFmpeg's own connect, so the host is resolved here,
        # once, and FFmpeg dials the checked address (issue 12 "SSRF"); other schemes pass check_source
        require_protocol(uri)
        return guard.pinned(uri)
    check_source(uri, settings, guard)
    return uri


def check_hook(url: str | None, guard: Guard) -> None:
    if url is None:
        return
    if urlsplit(url).scheme.lower() not in HOOK_SCHEMES:
        raise InvalidRequest(detail="hook URL must be http(s)")
    guard.check(url)


def check_hooks(req: VideoRequest, guard: Guard) -> None:
    """Every callback URL of an async request (aliases already resolved by ``parse_request``)."""
    check_hook(req.params.hook_url, guard)
    for op in req.ops:
        check_hook(op.hook_url, guard)
        check_hook(op.hook_url_segment, guard)


def with_source(request: dict[str, Any], uri: str) -> dict[str, Any]:
    """A copy of a request body whose ``data.uri`` is ``uri``."""
    out = dict(request)
    data = dict(out.get("data") or {})
    data["uri"] = uri
    out["data"] = data
    return out


__all__ = ["UnsafeURL", "check_hook", "check_hooks", "check_source", "engine_source", "local_file",
           "with_source"]


IMAGE_LIMIT = 16 * 1024 * 1024


def fetch_bytes(uri: str, settings: Settings, guard: Guard, limit: int = IMAGE_LIMIT) -> bytes:
    """The bytes of a small object named by a request (a face image): ``file://`` below the media root,
    ``data:...;base64,`` inline, or http(s) through the SSRF guard (redirects checked hop by hop)."""
    import base64
    import binascii
    import http.client
    from urllib.parse import urljoin

    from argus_core.errors import VideoNotFound

    scheme = urlsplit(uri).scheme.lower()
    if scheme == "data":
        head, _, payload = uri.partition(",")
        try:
            data = base64.b64decode(payload, validate=True) if head.endswith(";base64") else unquote(payload).encode()
        except (binascii.Error, ValueError):
            raise InvalidRequest(detail="bad data: URI") from None
    elif scheme == "file":
        path = local_file(uri, settings.media_root)
        try:
            with open(path, "rb") as f:
                data = f.read(limit + 1)
        except OSError:
            raise VideoNotFound("cannot find the image") from None
    elif scheme in ("http", "https"):
        data = b""
        for _ in range(6):
            conn = guard.connection(uri, settings.callback_timeout)
            try:
                parts = urlsplit(uri)
                conn.request("GET", (parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
                             headers={"User-Agent": "argus"})
                resp = conn.getresponse()
                if resp.status in (301, 302, 303, 307, 308) and resp.getheader("Location"):
                    uri = urljoin(uri, resp.getheader("Location"))
                    continue
                if resp.status != 200:
                    raise VideoNotFound("cannot find the image", detail=f"HTTP {resp.status}")
                data = resp.read(limit + 1)
                break
            except (OSError, http.client.HTTPException) as exc:
                raise VideoNotFound("cannot find the image", detail=str(exc)) from None
            finally:
                conn.close()
        else:
            raise UnsafeURL(detail="too many redirects")
    else:
        raise InvalidRequest(detail=f"scheme {scheme!r} not allowed for images")
    if len(data) > limit:
        raise InvalidRequest(detail="image too large")
    return data
