"""The queue API (CONTRACT §8) as a runner backend, for ``argus worker --queue-url http://server:port``.

A worker on another machine leases jobs over HTTP, heartbeats with ``touch``, reports segments and op
results through ``events`` (the server turns them into callbacks from the job's stored request, so a
worker can never choose where callbacks go) and ends with ``finish``. Requests are signed with the
worker's Qiniu key pair when one is given.
"""

from __future__ import annotations

import http.client
import logging
import time
from typing import Any, Iterable, Sequence
from urllib.parse import urlencode, urlsplit

import msgspec

from ..auth import sign_request
from ..schemas import CallbackEvent, Event, LeaseView, OpEvent, ProgressEvent, SegmentEvent
from .protocol import Lease, LiveState

log = logging.getLogger("argus.remote")


class RemoteError(Exception):
    pass


class RemoteQueue:
    """:class:`argus_http.queue.protocol.Backend` over the HTTP queue API."""

    def __init__(self, base_url: str, access_key: str = "", secret_key: str = "", timeout: float = 30.0,
                 retries: int = 3) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad queue URL {base_url!r}")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.ak, self.sk = access_key, secret_key
        self.timeout = timeout
        self.retries = retries

    def _call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None) -> tuple[int, Any]:
        full = self.prefix + path
        qs = urlencode(query or {})
        data = b"" if body is None else msgspec.json.encode(body)
        host_hdr = self.host if self.port in (80, 443) else f"{self.host}:{self.port}"
        headers = {"Host": host_hdr}
        if body is not None:
            headers["Content-Type"] = "application/json"
        if self.ak:
            headers["Authorization"] = sign_request(self.ak, self.sk, method, full, qs, host_hdr,
                                                    headers.get("Content-Type", ""), data)
        last: Exception | None = None
        for attempt in range(self.retries):
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=self.timeout)
            try:
                conn.request(method, full + (f"?{qs}" if qs else ""), body=data or None, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
                if resp.status >= 500:
                    raise RemoteError(f"{method} {path}: HTTP {resp.status}")
                return resp.status, (msgspec.json.decode(raw) if raw else None)
            except (OSError, http.client.HTTPException, RemoteError) as exc:
                last = exc
                time.sleep(min(2.0, 0.2 * 2 ** attempt))
            finally:
                conn.close()
        raise RemoteError(str(last))

    @staticmethod
    def _ok(status: int, body: Any, what: str) -> bool:
        if status == 200:
            return True
        if status == 409:
            return False
        raise RemoteError(f"{what}: HTTP {status} {body}")

    # -- Backend ---------------------------------------------------------------------------------
    def claim(self, owner: str, n: int, kinds: Sequence[str] = ("video", "vframe")) -> list[Lease]:
        status, body = self._call("GET", "/v1/jobs", {"number": n, "kind": ",".join(kinds)})
        if status != 200:
            raise RemoteError(f"lease: HTTP {status} {body}")
        try:
            views = msgspec.convert(body, list[LeaseView])
        except msgspec.ValidationError as exc:
            raise RemoteError(f"lease: unexpected answer: {exc}") from None
        return [Lease(job_id=v.id, token=v.lease, uid=str(v.uid), kind=v.kind, vid=v.vid, request=v.job,
                      attempts=v.attempts, timeout=float(v.timeout), resume_ms=v.resume_ms) for v in views]

    def touch(self, job_id: str, token: str) -> bool:
        return self._ok(*self._call("POST", f"/v1/job/{job_id}/touch", body={"lease": token}), "touch")

    def lost(self, leases: Iterable[tuple[str, str]]) -> set[str]:
        # Touching doubles as the kill check: a cancelled job's lease is gone (409).
        return {job_id for job_id, token in leases if not self.touch(job_id, token)}

    def _events(self, job_id: str, token: str, events: list[Event]) -> bool:
        return self._ok(*self._call("POST", f"/v1/job/{job_id}/events", body={"lease": token, "events": events}),
                        "events")

    def record_segment(self, job_id: str, token: str, op: str, index: int, segment: dict[str, Any]) -> bool:
        return self._events(job_id, token, [SegmentEvent(op=op, index=index, result=segment)])

    def record_op(self, job_id: str, token: str, op: str, result: dict[str, Any]) -> bool:
        return self._events(job_id, token, [OpEvent(op=op, result=result)])

    def record_callback(self, job_id: str, token: str, msg_id: str, url: str, body: dict[str, Any]) -> bool:
        return self._events(job_id, token, [CallbackEvent(name=msg_id, url=url, body=body)])

    def record_progress(self, job_id: str, token: str, percent: int, duration_ms: int | None = None,
                        live: LiveState | None = None) -> bool:
        return self._events(job_id, token, [ProgressEvent(percent=percent, duration_ms=duration_ms, live=live)])

    def finish(self, job_id: str, token: str, result: dict[str, Any] | None = None, error: str | None = None,
               retryable: bool = False) -> bool:
        body: dict[str, Any] = {"lease": token}
        if error is None:
            body["result"] = result or {}
        else:
            body["error"] = error
            body["retryable"] = retryable
        return self._ok(*self._call("POST", f"/v1/job/{job_id}/finish", body=body), "finish")

    def release(self, job_id: str, token: str) -> bool:
        return self._ok(*self._call("POST", f"/v1/job/{job_id}/release", body={"lease": token}), "release")

    def close_thread(self) -> None:
        """Nothing is kept per thread (each call opens its own connection)."""
