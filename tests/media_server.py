"""A small HTTP file server on loopback with Range support (as real media servers have; FFmpeg seeks
with Range requests, which http.server's stock handler ignores)."""

from __future__ import annotations

import http.server
import os
import re
import threading
from pathlib import Path


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    require: str | None = None
    seen: list[str]

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.seen.append(self.path)
        if self.require is not None and self.require not in self.path.partition("?")[2].split("&"):
            self.send_error(403)  # as a signed-URL store answers a request without its token
            return
        path = self.root / self.path.lstrip("/").split("?")[0]
        if not path.is_file():
            self.send_error(404)
            return
        size = path.stat().st_size
        start, end = 0, size - 1
        m = re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if m and (m.group(1) or m.group(2)):
            if m.group(1):
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else size - 1
            else:
                start = max(0, size - int(m.group(2)))
            if start >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.end_headers()
                return
            end = min(end, size - 1)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        with open(path, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            try:
                while left > 0:
                    chunk = fh.read(min(left, 1 << 16))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
            except (BrokenPipeError, ConnectionResetError):
                pass


class MediaServer:
    """``with MediaServer(folder) as base_url: ...`` serves the folder on 127.0.0.1. ``require``: a query
    parameter (``token=abc``) without which every request is a 403; ``seen`` lists the paths requested."""

    def __init__(self, root: str | os.PathLike, require: str | None = None) -> None:
        self.seen: list[str] = []
        handler = type("Handler", (_Handler,), {"root": Path(root), "require": require, "seen": self.seen})
        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._srv.daemon_threads = True

    def __enter__(self) -> str:
        threading.Thread(target=self._srv.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._srv.server_address[1]}"

    def __exit__(self, *exc) -> None:
        self._srv.shutdown()
        self._srv.server_close()
