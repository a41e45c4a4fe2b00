"""Qiniu token authentication (CONTRACT §11, algorithm in ORIGINAL-BEHAVIOUR.md §13).

``Authorization: Qiniu <AccessKey>:<urlsafe_base64(HMAC-SHA1(SecretKey, signingStr))>`` where::

    signingStr = METHOD " " path ["?" query] "\\nHost: " host ["\\nContent-Type: " ct]
                 ["\\n" X-Qiniu-* headers, sorted] "\\n\\n" [body, unless no ct or octet-stream]

The SDKs differ slightly (the Go SDK always writes a Content-Type line and signs only form/JSON bodies;
older ones send no X-Qiniu-* lines), so the server accepts any of those variants. Comparison is
constant-time. :func:`sign_request` is the client side, used by ``argus worker --queue-url`` and tests.

Two rules on top (issue 10): a request whose body the matching signature does not cover is refused (without a
Content-Type the SDKs sign no body, so a token made for body A would carry body B), and a signed
``X-Qiniu-Date`` (``20060102T150405Z``, UTC) must lie within ``max_skew`` seconds of the server's clock, so a
captured request cannot be replayed later; ``require_date`` makes the header mandatory. A date the
signature does not cover is refused too (anyone could write a fresh one).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import time
from typing import Callable, Iterable, Mapping, Sequence

from .config import KeyPair

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
OCTET = "application/octet-stream"


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode()


def signing_string(method: str, path: str, query: str, host: str, content_type: str,
                   qiniu_headers: Sequence[tuple[str, str]], body: bytes, *,
                   always_ct: bool = False, body_types: Iterable[str] | None = None) -> bytes:
    """The bytes that are signed. ``always_ct``/``body_types`` select the Go-SDK variant."""
    ct = content_type or (FORM if always_ct else "")
    s = f"{method.upper()} {path}"
    if query:
        s += "?" + query
    s += "\nHost: " + host
    if ct:
        s += "\nContent-Type: " + ct
    for name, value in sorted(qiniu_headers):
        s += f"\n{name}: {value}"
    s += "\n\n"
    out = s.encode()
    base_ct = ct.split(";")[0].strip().lower()
    if body:
        if body_types is not None:
            if base_ct in body_types:
                out += body
        elif ct and base_ct != OCTET:
            out += body
    return out


def sign(secret_key: str, data: bytes) -> str:
    return _b64(hmac.new(secret_key.encode(), data, hashlib.sha1).digest())


def sign_request(access_key: str, secret_key: str, method: str, path: str, query: str, host: str,
                 content_type: str = "", body: bytes = b"",
                 qiniu_headers: Sequence[tuple[str, str]] = ()) -> str:
    """The ``Authorization`` header value for a request (client side, KB variant)."""
    data = signing_string(method, path, query, host, content_type, qiniu_headers, body)
    return f"Qiniu {access_key}:{sign(secret_key, data)}"


def canonical_header(name: str) -> str:
    """``x-qiniu-date`` / WSGI ``X_QINIU_DATE`` → ``X-Qiniu-Date`` (Go's canonical form)."""
    return "-".join(p.capitalize() for p in name.replace("_", "-").split("-"))


def body_signed(content_type: str, body: bytes, *, always_ct: bool = False,
                body_types: Iterable[str] | None = None) -> bool:
    """Whether :func:`signing_string` with these options includes ``body`` (an empty body always counts)."""
    if not body:
        return True
    ct = content_type or (FORM if always_ct else "")
    base_ct = ct.split(";")[0].strip().lower()
    if body_types is not None:
        return base_ct in body_types
    return bool(ct) and base_ct != OCTET


def parse_qiniu_date(value: str) -> float | None:
    """``20060102T150405Z`` → POSIX seconds (None if malformed)."""
    try:
        return float(calendar.timegm(time.strptime(value.strip(), "%Y%m%dT%H%M%SZ")))
    except (ValueError, OverflowError):
        return None


class Authenticator:
    """Verifies tokens against the configured key pairs."""

    def __init__(self, keys: Iterable[KeyPair], *, max_skew: float = 900.0, require_date: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.keys = {k.access_key: k for k in keys}
        self.max_skew = max_skew
        self.require_date = require_date
        self.clock = clock

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def verify(self, authorization: str, method: str, path: str, query: str, host: str,
               content_type: str, body: bytes, headers: Mapping[str, str]) -> KeyPair | None:
        """The key pair that signed this request, or None."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme != "Qiniu" or ":" not in token:
            return None
        ak, _, given = token.strip().partition(":")
        key = self.keys.get(ak)
        # Unknown keys still cost one HMAC, so timing does not tell which access keys exist.
        secret = key.secret_key if key else "\0" * 40
        qh = [(canonical_header(n), v) for n, v in headers.items() if n.lower().replace("_", "-").startswith("x-qiniu-")]
        date = next((v for n, v in qh if n == "X-Qiniu-Date"), None)
        variants = [
            dict(qiniu_headers=qh),
            dict(qiniu_headers=(), always_ct=False),
            dict(qiniu_headers=qh, always_ct=True, body_types=(FORM, JSON)),
            dict(qiniu_headers=(), always_ct=True, body_types=(FORM, JSON)),
        ]
        given_b = given.strip().encode()
        ok = False
        seen: set[bytes] = set()
        for v in variants:
            signed_qh = v.pop("qiniu_headers")
            data = signing_string(method, path, query, host, content_type, signed_qh, body, **v)
            if data in seen:
                continue
            seen.add(data)
            expected = sign(secret, data).encode()
            # Accept the signature with or without base64 padding.
            match = hmac.compare_digest(expected, given_b) or hmac.compare_digest(expected.rstrip(b"="), given_b)
            # ... but only a variant that covers the body and, when one was sent, the date
            covers = body_signed(content_type, body, **v) and (date is None or bool(signed_qh))
            ok |= match and covers
        return key if (ok and key is not None and self.fresh(date)) else None

    def fresh(self, date: str | None) -> bool:
        """Whether an ``X-Qiniu-Date`` value (None: not sent) is acceptable now."""
        if date is None:
            return not self.require_date
        when = parse_qiniu_date(date)
        return when is not None and abs(self.clock() - when) <= self.max_skew
