"""Standard Webhooks signing (https://www.standardwebhooks.com): ``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` (CONTRACT §7).

A secret written ``whsec_<base64>`` is used as the decoded bytes (the convention of that spec); any other
string is used as its UTF-8 bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Mapping


def secret_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 signature>`` of one delivery."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """Headers of one delivery attempt (the timestamp is the attempt's, as the spec says)."""
    ts = int(time.time()) if timestamp is None else timestamp
    out = {"webhook-id": msg_id, "webhook-timestamp": str(ts)}
    if secret:
        out["webhook-signature"] = signature(secret, msg_id, ts, body)
    return out


def verify(secret: str, hdrs: Mapping[str, str], body: bytes, tolerance: float = 300.0,
           now: float | None = None) -> bool:
    """Check a received delivery (for receivers and tests): a valid ``v1`` signature, fresh timestamp."""
    low = {k.lower(): v for k, v in hdrs.items()}
    try:
        msg_id = low["webhook-id"]
        ts = int(low["webhook-timestamp"])
        sigs = low["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - ts) > tolerance:
        return False
    expected = signature(secret, msg_id, ts, body)
    return any(hmac.compare_digest(expected, s) for s in sigs)
