"""Saving frames as JPEG (CONTRACT §10): keys, encoding, and the store (a directory or an fsspec URL).

Keys are ``<prefix>/<video_id>/<offset>.jpg`` with the prefix cleaned so it can never climb out of the
store (no ``..``, no absolute paths). A local store returns ``file://`` URIs; an fsspec store
(``s3://bucket/dir``) returns ``<protocol>://<path>`` URIs. fsspec is imported only when such a URL is
configured, so it is an optional dependency.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from argus_core.media.sampler import FrameGrabber
from argus_core.media.source import source_for


def clean_prefix(prefix: str | None) -> str:
    """A relative, normalised prefix without ``..`` components ('' when nothing is left)."""
    parts = [p for p in (prefix or "").replace("\\", "/").split("/") if p not in ("", ".", "..")]
    return "/".join(parts)


def cut_key(prefix: str | None, video_id: str, offset: int) -> str:
    """``<prefix>/<video_id>/<offset>.jpg`` (video ids are restricted to ``[A-Za-z0-9_.:-]``)."""
    vid = clean_prefix(video_id) or "_"
    return posixpath.join(*(p for p in (clean_prefix(prefix), vid, f"{int(offset)}.jpg") if p))


def jpeg_bytes(image: av.VideoFrame | np.ndarray, quality: int = 85) -> bytes:
    """Encode an RGB ``(h, w, 3)`` uint8 array or a decoded frame as a baseline JPEG (FFmpeg's mjpeg)."""
    frame = image if isinstance(image, av.VideoFrame) else av.VideoFrame.from_ndarray(
        np.ascontiguousarray(image), format="rgb24")
    width, height = frame.width - frame.width % 2, frame.height - frame.height % 2
    ctx = av.CodecContext.create("mjpeg", "w")
    ctx.width, ctx.height = max(width, 2), max(height, 2)
    ctx.pix_fmt = "yuvj420p"
    ctx.time_base = Fraction(1, 25)
    # mjpeg's qscale: 2 (best) .. 31 (worst); map quality 100..0 onto it.
    q = int(round(2 + (100 - max(0, min(100, quality))) * 29 / 100))
    ctx.qmin = ctx.qmax = q  # pins the quantiser (codec fields; the "options" spelling is ignored)
    src = frame.reformat(width=ctx.width, height=ctx.height, format="yuvj420p")
    packets = ctx.encode(src) + ctx.encode(None)
    return b"".join(bytes(p) for p in packets)


class FrameStore:
    """Writes JPEGs under a directory or an fsspec URL; ``put`` returns the stored object's URI."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._fs: Any = None
        if "://" in target and not target.startswith("file://"):
            import fsspec  # optional: only for remote stores

            self._fs, self._root = fsspec.core.url_to_fs(target)
            self._protocol = target.split("://", 1)[0]
        else:
            self._root = target[len("file://"):] if target.startswith("file://") else target

    def put(self, key: str, data: bytes) -> str:
        key = "/".join(p for p in key.split("/") if p not in ("", ".", ".."))
        if self._fs is not None:
            path = posixpath.join(self._root, key)
            self._fs.pipe_file(path, data)
            return f"{self._protocol}://{path}"
        path = Path(self._root, key)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename: a reader never sees half a JPEG.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return path.resolve().as_uri()


class CutSaver:
    """Saves the kept cuts of one job (CONTRACT §10) and puts their ``uri`` into the result dicts.

    A frame is saved once per job even when several ops keep it. Any failure (source gone, store down)
    leaves that cut without ``uri`` and never fails the job.
    """

    def __init__(self, store: FrameStore, source: str, prefix: str | None, video_id: str,
                 source_options: dict[str, str] | None = None) -> None:
        self.store, self.source, self.prefix, self.video_id = store, source, prefix, video_id
        self.source_options = source_options
        self.saved: dict[int, str | None] = {}
        self._grabber: FrameGrabber | None = None
        self._broken = False

    def _uri_for(self, offset: int) -> str | None:
        if offset in self.saved:
            return self.saved[offset]
        uri = None
        if not self._broken:
            try:
                if self._grabber is None:
                    # the same way the engine opened it: through the SSRF-checking proxy, with its whitelist
                    self._grabber = FrameGrabber(source_for(self.source, options=self.source_options))
                frame = self._grabber.frame_at(offset)
                if frame is not None:
                    uri = self.store.put(cut_key(self.prefix, self.video_id, offset), jpeg_bytes(frame))
            except Exception as exc:
                import logging

                logging.getLogger("argus.save").warning(
                    "frame save failed", extra={"video": self.video_id, "offset": offset, "error": str(exc)})
                if self._grabber is None:
                    self._broken = True  # the source cannot even be opened: do not retry per cut
        self.saved[offset] = uri
        return uri

    def cuts(self, cuts: list[dict[str, Any]]) -> None:
        for cut in sorted(cuts, key=lambda c: c["offset"]):
            uri = self._uri_for(int(cut["offset"]))
            if uri:
                cut["uri"] = uri

    def op_result(self, result: dict[str, Any]) -> None:
        for seg in result.get("segments") or []:
            self.cuts(seg.get("cuts") or [])

    def job_result(self, result: dict[str, Any]) -> None:
        # Offsets of all ops together, in order, so the grabber decodes forward once.
        all_cuts = [c for r in result.values() for s in (r.get("segments") or []) for c in (s.get("cuts") or [])]
        self.cuts(all_cuts)

    def close(self) -> None:
        if self._grabber is not None:
            self._grabber.close()
            self._grabber = None
