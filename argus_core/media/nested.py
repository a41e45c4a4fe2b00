"""What FFmpeg may open for one source, per source kind (issue 10: SSRF through HLS, media-root escape).

A container format that names further resources (HLS playlists name playlists, segments and keys; DASH,
``concat``, ``sdp`` … likewise) lets whoever wrote the file choose what FFmpeg opens next. Two rules:

- A plain video (local file, http(s) MP4/TS/FLV, …) may not be read by such a format at all
  (:data:`FLAT_FORMATS`, FFmpeg's ``format_whitelist``, inherited by nested contexts), and FFmpeg gets only
  the protocols its scheme needs (:func:`protocols_for`): ``file`` alone for a local file; ``http,tcp`` for
  http; ``https,tls,tcp`` (+ ``httpproxy``, FFmpeg's CONNECT client, when fetching through the egress proxy)
  for https.
- An HLS playlist (``.m3u8``/``.m3u``) is opened with every resource — the playlist itself, variant
  playlists, segments, ``#EXT-X-KEY``/``#EXT-X-MAP``/``#EXT-X-MEDIA``/``#EXT-X-I-FRAME-STREAM-INF`` URIs —
  going through :class:`NestedOpener` (PyAV's ``io_open``): an http(s) playlist may name only ``http``/
  ``https`` URLs (exactly: FFmpeg's own HLS check lets ``httpproxy://`` through as "http"), fetched through
  the egress proxy when there is one, which applies the SSRF guard to each; a local playlist may name only
  local files inside the media root (default: the playlist's own folder). Anything else is refused before a
  byte leaves the process, and the refusal is logged.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from functools import lru_cache
from typing import Any
from urllib.parse import unquote, urlsplit

import av

log = logging.getLogger("argus.source")

#: demuxers that open further resources named inside the file (never for a plain video)
NESTING_FORMATS = frozenset({"hls", "applehttp", "dash", "concat", "imf", "sdp", "rtsp", "rtp", "rtp_mpegts",
                             "webm_dash_manifest", "image2", "image2pipe", "lavfi", "mpl2", "tee", "ffmetadata"})
#: source options that are Argus's own (stripped before FFmpeg sees the options)
MEDIA_ROOT_OPTION = "argus_media_root"
#: most bytes all resources of one HLS opening may bring in (the service's ``max_download``)
MAX_DOWNLOAD_OPTION = "argus_max_download"
HLS_EXTENSIONS = (".m3u8", ".m3u")


@lru_cache(maxsize=1)
def flat_formats() -> str:
    """FFmpeg's ``format_whitelist`` for a plain video: every demuxer but the nesting ones."""
    names = []
    for name in sorted(av.formats_available):
        try:
            fmt = av.ContainerFormat(name, "r")
        except Exception:
            continue
        if not fmt.is_input or set(fmt.name.split(",")) & NESTING_FORMATS:
            continue
        names.append(fmt.name)
    return ",".join(dict.fromkeys(names))


def hls_formats() -> str:
    """``format_whitelist`` for an HLS source: the playlist demuxer and what segments are made of."""
    return "hls," + flat_formats()


def is_hls(uri: str) -> bool:
    return urlsplit(uri).path.lower().endswith(HLS_EXTENSIONS)


def protocols_for(uri: str, proxied: bool) -> str:
    """The narrowest ``protocol_whitelist`` for a plain (non-HLS) source of this URI."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in ("", "file") or len(scheme) == 1:
        return "file"
    if scheme == "http":
        return "http,tcp"
    if scheme == "https":
        return "https,tls,tcp" + (",httpproxy" if proxied else "")
    if scheme == "rtmp":
        return "rtmp,tcp"
    if scheme == "rtsp":
        return "rtsp,rtp,tcp,udp"
    if scheme == "srt":
        return "srt,udp"
    return scheme


class Refused(OSError):
    """A nested resource the source kind may not open (mapped to ``cannot find the video``)."""


class _Body:
    """A fetched resource as the sequential, read-only file object PyAV reads (no seek: HLS never needs it);
    its bytes count against the opener's ``max_bytes``."""

    def __init__(self, resp: Any, opener: "NestedOpener") -> None:
        self.resp, self.opener = resp, opener
        self.url: str = resp.geturl()  #: after redirects: what relative URIs inside resolve against

    def read(self, n: int = -1) -> bytes:
        data = self.resp.read(n if n and n > 0 else None)
        self.opener.received += len(data)
        if self.opener.max_bytes and self.opener.received > self.opener.max_bytes:
            log.warning("HLS source cut at max_download (%d bytes)", self.opener.max_bytes)
            raise Refused("max_download reached")
        return data

    def close(self) -> None:
        self.resp.close()


class NestedOpener:
    """PyAV ``io_open`` for an HLS source rooted at ``uri``: every resource checked, then opened."""

    def __init__(self, uri: str, timeout: float, proxy: str | None, media_root: str | None,
                 max_bytes: int = 0) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.received = 0
        self.local = urlsplit(uri).scheme.lower() in ("", "file") or len(urlsplit(uri).scheme) == 1
        path = _local_path(uri) if self.local else None
        self.root = os.path.realpath(media_root or os.path.dirname(os.path.realpath(path or ".")))
        handlers = {"http": proxy, "https": proxy} if proxy else {}
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler(handlers))
        self.opened: list[str] = []
        self.refused: list[str] = []

    def check(self, url: str) -> str:
        """What to open for ``url`` (a local path or an http(s) URL); raises :class:`Refused`."""
        scheme = urlsplit(url).scheme.lower()
        if self.local:
            if scheme not in ("", "file") and len(scheme) != 1:
                raise Refused(f"a local playlist may name only local files, not {scheme}:")
            path = os.path.realpath(_local_path(url))
            if os.path.commonpath([self.root, path]) != self.root:
                raise Refused("outside the media root")
            return path
        if scheme not in ("http", "https"):
            raise Refused(f"an http(s) playlist may name only http(s) URLs, not {scheme or 'a path'}")
        return url

    def __call__(self, url: str, flags: int, options: Any) -> Any:
        try:
            target = self.check(url)
        except Refused as exc:
            self.refused.append(url)
            log.warning("refused a resource named by an HLS source: %.200s (%s)", url, exc)
            raise
        if flags & 2:  # AVIO_FLAG_WRITE: never
            raise Refused("write access")
        self.opened.append(url)
        if self.local:
            return open(target, "rb")
        req = urllib.request.Request(target, headers={"User-Agent": "argus"})
        return _Body(self.opener.open(req, timeout=self.timeout), self)


def _local_path(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.scheme.lower() == "file":
        if parts.netloc not in ("", "localhost"):
            raise Refused("file URI with a host")
        return unquote(parts.path)
    return uri
