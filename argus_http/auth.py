"""Qiniu token authentication (CONTRACT §11, algorithm in ORIGINAL-BEHAVIOUR.md §13).

``Authorization: Qiniu <AccessKey>:<urlsafe_base64(HMAC-SHA1(SecretKey, signingStr))>`` where::

    signingStr = METHOD " " path ["?" query] "\\nHost: " host ["\\nContent-Type: " ct]
                 ["\\n" X-Qiniu-* headers, sorted] "\\n\\n" [body, unless no ct or octet-stream]

The SDKs differ slightly (the Go SDK always writes a Content-Type line and signs only form/JSON bodies;
older ones send no X-Qiniu-* lines), so the server accepts any of those variants. Comparison is
constant-time. :func:`sign_request` is the client side, used by ``argus worker --queue-url`` and tests.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Iterable, Mapping, Sequence

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


class Authenticator:
    """Verifies tokens against the configured key pairs."""

    def __init__(self, keys: Iterable[KeyPair]) -> None:
        self.keys = {k.access_key: k for k in keys}

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
            data = signing_string(method, path, query, host, content_type, v.pop("qiniu_headers"), body, **v)
            if data in seen:
                continue
            seen.add(data)
            expected = sign(secret, data).encode()
            # Accept the signature with or without base64 padding.
            ok |= hmac.compare_digest(expected, given_b) or hmac.compare_digest(expected.rstrip(b"="), given_b)
        return key if (ok and key is not None) else None
