"""A loopback HTTP proxy through which FFmpeg fetches http(s) video sources.

The SSRF guard checks ``data.uri`` and its redirects before a job starts, but FFmpeg then connects on
its own: it resolves the host again (DNS rebinding), follows redirects the probe never saw, and for HLS
opens every playlist and segment URL the playlist names. Handing FFmpeg ``http_proxy=`` this proxy puts
every one of those connections through the same :class:`~argus_http.net.ssrf.Guard`, and the proxy connects
to the address that was checked. FFmpeg tunnels https with ``CONNECT`` (TLS stays end to end, certificate
checked against the host name) and sends plain http as absolute-URI requests.

A refused destination gets ``403`` with the reason in a header and a log line; FFmpeg reports the source
as unreachable, which the engine maps to the documented ``cannot find the video``.
"""

from __future__ import annotations

import logging
import os
import select
import socket
import socketserver
import threading
from urllib.parse import urlsplit

from ..errors import UnsafeURL
from .ssrf import Guard

log = logging.getLogger("argus.egress")

_HEAD_LIMIT = 64 * 1024
_HOP_HEADERS = {"proxy-connection", "proxy-authorization", "connection", "keep-alive"}


def drop_no_proxy() -> None:
    """Remove ``no_proxy`` from this process' environment when nothing else here can need it.

    FFmpeg honours ``no_proxy`` even when told to use our proxy, so a host listed there would be fetched
    unchecked when the service re-opens a source (saving frames). Without ``http(s)_proxy`` in the
    environment, ``no_proxy`` means nothing to the other libraries in this process, so it goes; with
    one, it stays and a warning says what that leaves open. Decoder processes always drop it."""
    names = [v for v in ("no_proxy", "NO_PROXY") if os.environ.get(v)]
    if not names:
        return
    if any(os.environ.get(v) for v in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")):
        log.warning("no_proxy is set alongside an HTTP proxy: frames saved for params.save from hosts it "
                    "lists are fetched without the SSRF egress check")
        return
    for v in names:
        os.environ.pop(v, None)
    log.info("ignoring no_proxy: video sources always go through the egress proxy")


class EgressProxy:
    """Start with :meth:`start` (returns the proxy URL for FFmpeg's ``http_proxy``), stop with :meth:`close`.

    ``idle_timeout``: a relayed connection with no traffic either way for this long is closed (FFmpeg's own
    ``rw_timeout`` normally fires first)."""

    def __init__(self, guard: Guard, idle_timeout: float = 120.0, connect_timeout: float = 30.0,
                 max_bytes: int = 0) -> None:
        self.guard = guard
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        #: most bytes one connection may bring in (``max_download``, CONTRACT §11; 0: no cap). An endless
        #: source is one endless connection (FFmpeg does not reconnect a stream of unknown length).
        self.max_bytes = max_bytes
        self.capped = 0
        self.refused = 0
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("egress proxy not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> str:
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="argus-egress", daemon=True)
        self._thread.start()
        log.info("egress proxy for video sources on %s", self.url)
        return self.url

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "EgressProxy":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- one client connection --------------------------------------------------------------------------
    def _handle(self, client: socket.socket) -> None:
        client.settimeout(self.connect_timeout)
        try:
            head, rest = _read_head(client)
        except (OSError, ValueError):
            return
        try:
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
        except ValueError:
            _reply(client, 400, "bad request")
            return
        method = method.upper()
        if method == "CONNECT":
            url = f"https://{target}/"
        elif method in ("GET", "HEAD") and urlsplit(target).scheme.lower() == "http":
            url = target
        else:
            _reply(client, 405, f"{method} {urlsplit(target).scheme or target!r} not proxied")
            return
        try:
            _host, port, addrs = self.guard.resolve(url)
        except UnsafeURL as exc:
            self.refused += 1
            log.warning("egress refused: %s %s (%s)", method, _redact(url), exc.detail)
            _reply(client, 403, exc.detail)
            return
        upstream = _connect(addrs, port, self.connect_timeout)
        if upstream is None:
            _reply(client, 502, "cannot connect")
            return
        with upstream:
            try:
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    if rest:  # bytes the client sent before our answer belong to the tunnel
                        upstream.sendall(rest)
                else:
                    upstream.sendall(_origin_request(method, target, version, header_lines) + rest)
            except OSError:
                return
            if _relay(client, upstream, self.idle_timeout, self.max_bytes):
                self.capped += 1
                log.warning("egress: %s %s cut at max_download (%d bytes)", method, _redact(url), self.max_bytes)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(8192)
        if not chunk:
            raise ValueError("closed before the request head")
        data += chunk
        if len(data) > _HEAD_LIMIT:
            raise ValueError("request head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _origin_request(method: str, target: str, version: str, header_lines: list[str]) -> bytes:
    """The request as the origin server expects it: a path, no proxy headers, one request per connection
    (so a second request on the connection can never reach a host that was not checked)."""
    parts = urlsplit(target)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {path} {version}"]
    lines += [h for h in header_lines if h and h.split(":", 1)[0].strip().lower() not in _HOP_HEADERS]
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _connect(addrs: list[str], port: int, timeout: float) -> socket.socket | None:
    for addr in addrs:
        try:
            return socket.create_connection((addr.split("%")[0], port), timeout)
        except OSError:
            continue
    return None


def _relay(a: socket.socket, b: socket.socket, idle_timeout: float, max_in: int = 0) -> bool:
    """Copy bytes both ways until either side closes, nothing moves for ``idle_timeout`` s, or more than
    ``max_in`` bytes came from ``b`` (0: no cap). True when the cap ended it."""
    a.settimeout(idle_timeout)  # a peer that stops reading must not block sendall for ever
    b.settimeout(idle_timeout)
    socks = [a, b]
    received = 0
    while True:
        ready, _, _ = select.select(socks, [], [], idle_timeout)
        if not ready:
            return False
        for src in ready:
            dst = b if src is a else a
            try:
                data = src.recv(65536)
                if not data:
                    return False
                if src is b:
                    received += len(data)
                    if max_in and received > max_in:
                        return True
                dst.sendall(data)
            except OSError:
                return False


def _reply(sock: socket.socket, status: int, reason: str) -> None:
    text = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 502: "Bad Gateway"}[status]
    safe = reason.replace("\r", " ").replace("\n", " ")[:200]
    try:
        sock.sendall(f"HTTP/1.1 {status} {text}\r\nX-Argus-Refused: {safe}\r\nContent-Length: 0\r\n"
                     f"Connection: close\r\n\r\n".encode("latin-1", "replace"))
    except OSError:
        pass


def _redact(url: str) -> str:
    """A URL for logs without its query string (signed URLs carry credentials there)."""
    p = urlsplit(url)
    return f"{p.scheme}://{p.netloc}{p.path}"
