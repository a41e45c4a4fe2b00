"""SSRF guard for ``data.uri`` and every hook URL (CONTRACT §11).

A URL is refused when its host is, or resolves to, an address that is not globally routable (loopback,
private, link-local such as 169.254.169.254, CGNAT, unspecified, multicast, reserved, and the same hidden
inside IPv4-mapped / NAT64 IPv6 addresses) unless the address or the host name is allow-listed.
*Every* resolved address must pass, so a DNS name with one public and one private record is refused.

Outgoing requests made by the service itself (callbacks, redirect probes) connect to the address that
was checked — not to a second DNS answer — so DNS rebinding cannot slip past. HTTP redirects are followed
hop by hop, each hop checked.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from typing import Callable, Iterable, Sequence
from urllib.parse import urljoin, urlsplit

from ..errors import UnsafeURL

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_DEFAULT_PORTS = {"http": 80, "https": 443, "rtmp": 1935, "rtsp": 554, "srt": 9000}


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (IPv4 and IPv6)."""
    infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(info[4][0] for info in infos))


def _unwrap(ip: Address) -> Address:
    """The IPv4 address hidden in an IPv4-mapped or NAT64 IPv6 address, else ``ip``."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def is_public(ip: Address) -> bool:
    """True for globally routable unicast addresses."""
    ip = _unwrap(ip)
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


class Guard:
    """Checks URLs against the policy; ``allow`` holds CIDRs (``127.0.0.1/32``, ``::1``) and host names."""

    def __init__(self, allow: Iterable[str] = (), resolver: Resolver = system_resolver) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        for entry in allow:
            entry = entry.strip()
            if not entry:
                continue
            try:
                self.networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))
        self.resolver = resolver

    def address_allowed(self, ip: Address) -> bool:
        if any(ip.version == n.version and ip in n for n in self.networks):
            return True
        inner = _unwrap(ip)
        if inner is not ip and any(inner.version == n.version and inner in n for n in self.networks):
            return True
        return is_public(ip)

    def resolve(self, url: str) -> tuple[str, int, list[str]]:
        """Check ``url``'s host; returns ``(host, port, addresses to connect to)``. Raises :class:`UnsafeURL`."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise UnsafeURL(detail=f"malformed URL {url!r}") from None
        host = (parts.hostname or "").lower().rstrip(".")
        if not host:
            raise UnsafeURL(detail=f"no host in {url!r}")
        port = port or _DEFAULT_PORTS.get(parts.scheme.lower(), 80)
        try:
            literal = ipaddress.ip_address(host)
        except ValueError:
            literal = None
        if literal is not None:
            if not self.address_allowed(literal):
                raise UnsafeURL(detail=f"address {host} is not public")
            return host, port, [str(literal)]
        if host in self.hosts:
            try:
                return host, port, self.resolver(host, port)
            except OSError as exc:
                raise UnsafeURL(detail=f"cannot resolve {host}: {exc}") from None
        if _looks_numeric(host):
            # "2130706433", "0x7f.1", "127.1": forms that the C resolver turns into loopback.
            raise UnsafeURL(detail=f"numeric host form {host!r} refused")
        try:
            addrs = self.resolver(host, port)
        except OSError as exc:
            raise UnsafeURL(detail=f"cannot resolve {host}: {exc}") from None
        if not addrs:
            raise UnsafeURL(detail=f"{host} resolves to nothing")
        for a in addrs:
            if not self.address_allowed(ipaddress.ip_address(a.split("%")[0])):
                raise UnsafeURL(detail=f"{host} resolves to non-public {a}")
        return host, port, addrs

    def check(self, url: str) -> None:
        """Raise :class:`UnsafeURL` unless ``url`` may be fetched/posted to."""
        self.resolve(url)

    def pinned(self, url: str) -> str:
        """``url`` resolved once, every address checked, and rewritten to be dialled at those addresses only
        (:func:`argus_core.media.source.pin_uri`): for rtmp/rtsp/srt, whose host FFmpeg would otherwise
        resolve again itself — a DNS answer that changed between the check and the connect (rebinding)
        is never asked for. Raises :class:`UnsafeURL`."""
        from argus_core.media.source import pin_uri

        _host, _port, addrs = self.resolve(url)
        return pin_uri(url, list(addrs))

    # -- outgoing HTTP through checked addresses ------------------------------------------------------
    def connection(self, url: str, timeout: float) -> http.client.HTTPConnection:
        """An HTTP(S) connection to ``url``'s host that will connect only to the checked address."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UnsafeURL(detail=f"scheme {scheme!r} cannot be posted to")
        host, port, addrs = self.resolve(url)
        cls = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        return cls(host, port, addrs, timeout)

    def final_url(self, url: str, timeout: float = 10.0, max_hops: int = 5) -> str:
        """Follow ``url``'s redirects hop by hop (each hop checked) and return the last URL.

        A source that cannot be reached is returned unchanged: the engine reports it as the documented
        ``cannot find the video``. Only http(s) URLs are probed."""
        for _ in range(max_hops + 1):
            if urlsplit(url).scheme.lower() not in ("http", "https"):
                self.check(url)
                return url
            conn = self.connection(url, timeout)
            try:
                parts = urlsplit(url)
                path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
                conn.request("GET", path, headers={"Range": "bytes=0-0", "User-Agent": "argus"})
                resp = conn.getresponse()
                location = resp.getheader("Location")
                status = resp.status
            except (OSError, http.client.HTTPException):
                return url
            finally:
                conn.close()
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                continue
            return url
        raise UnsafeURL(detail="too many redirects")


def _looks_numeric(host: str) -> bool:
    return all(part.isdigit() or part.startswith("0x") for part in host.split(".") if part) and \
        any(ch.isdigit() for ch in host)


class _PinnedHTTP(http.client.HTTPConnection):
    """Sends ``Host: <name>`` but connects to the addresses that passed the check."""

    def __init__(self, host: str, port: int, addrs: Sequence[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addrs = list(addrs)

    def _open(self) -> socket.socket:
        last: OSError | None = None
        for addr in self._addrs:
            try:
                return socket.create_connection((addr, self.port), self.timeout)
            except OSError as exc:
                last = exc
        raise last or OSError("no address")

    def connect(self) -> None:
        self.sock = self._open()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPS(_PinnedHTTP):
    default_port = 443

    def __init__(self, host: str, port: int, addrs: Sequence[str], timeout: float) -> None:
        super().__init__(host, port, addrs, timeout)
        self._context = ssl.create_default_context()

    def connect(self) -> None:
        sock = self._open()
        # Certificate checked against the host *name*, though we connected to a pinned address.
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
