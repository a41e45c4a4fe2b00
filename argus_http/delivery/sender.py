"""The callback sender: a background thread that delivers outbox rows (CONTRACT §7).

Success is any 2xx within ``callback_timeout`` (10 s). Anything else is retried on the configured schedule
(5 s, 30 s, 2 min, 10 min, 30 min, 1 h, ...) with jitter until ``callback_window`` (24 h) has passed; a
``410 Gone`` stops retrying at once. Rows live in the database, so a restart resumes where it stopped.
Each attempt re-checks the URL against the SSRF guard and connects only to the checked address.
"""

from __future__ import annotations

import logging
import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import http.client

from . import outbox, webhooks
from ..config import Settings
from ..errors import UnsafeURL
from ..metrics import Metrics
from ..net.ssrf import Guard
from ..queue.tables import Tables

log = logging.getLogger("argus.sender")


def post(guard: Guard, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST ``body`` as JSON; returns the HTTP status (redirects are not followed).

    ``timeout`` bounds the whole exchange, not each socket read: a receiver that answers one byte every
    few seconds is cut at ``timeout`` (issue 10: such a receiver held a sender thread for minutes)."""
    from urllib.parse import urlsplit

    conn = guard.connection(url, timeout)
    expired = threading.Event()

    def cut() -> None:
        expired.set()
        sock = getattr(conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(timeout, cut)
    timer.daemon = True
    timer.start()
    try:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body,
                     headers={"Content-Type": "application/json", "User-Agent": "argus-webhook", **headers})
        resp = conn.getresponse()
        resp.read(65536)
        if expired.is_set():
            raise TimeoutError(f"timed out: no complete answer within {timeout} s")
        return resp.status
    except (OSError, http.client.HTTPException):
        if expired.is_set():
            raise TimeoutError(f"timed out: no complete answer within {timeout} s") from None
        raise
    finally:
        timer.cancel()
        conn.close()


def receiver_of(url: str) -> str:
    """The receiver a callback URL names, for the per-receiver cap: ``host:port``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{(parts.hostname or '').lower()}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


class Sender:
    """Delivers due outbox rows with a small pool of threads; ``wake()`` makes it look at once."""

    def __init__(self, tables: Tables, settings: Settings, guard: Guard, metrics: Metrics | None = None) -> None:
        self.t = tables
        self.s = settings
        self.guard = guard
        self.metrics = metrics or Metrics()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=settings.callback_senders, thread_name_prefix="argus-send")
        self._slots = threading.Semaphore(settings.callback_senders)
        #: deliveries in flight per receiver (only the loop thread adds, any sender thread removes)
        self._busy: dict[str, int] = {}
        self._busy_lock = threading.Lock()
        self._deferred = False
        self._thread = threading.Thread(target=self._loop, name="argus-sender", daemon=True)

    def start(self) -> "Sender":
        self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _free(self) -> int:
        n = 0
        while self._slots.acquire(blocking=False):
            n += 1
        return n

    def _loop(self) -> None:
        while not self._stop.is_set():
            free = self._free()
            rows = []
            self._deferred = False
            try:
                if free:
                    # the hold outlasts a whole attempt (post() cuts it at callback_timeout), so a row is
                    # never claimed again while its first attempt still runs
                    rows = outbox.claim_due(self.t, free, hold=2 * self.s.callback_timeout + 5)
                    rows = self._within_receiver_caps(rows)
            except Exception:
                log.exception("cannot read the outbox")
            for _ in range(free - len(rows)):
                self._slots.release()
            for row in rows:
                self._pool.submit(self._deliver_and_release, row)
            if (len(rows) < free or not free) and not self._deferred:
                # Nothing more due (or every sender busy): sleep until woken or the next poll.
                self._wake.wait(self.s.callback_poll)
                self._wake.clear()

    def _within_receiver_caps(self, rows: list[outbox.Delivery]) -> list[outbox.Delivery]:
        """The claimed rows whose receiver has room; the others go back, due again shortly."""
        cap = max(1, self.s.callback_per_receiver)
        keep, back = [], []
        with self._busy_lock:
            for row in rows:
                who = receiver_of(row.url)
                if self._busy.get(who, 0) >= cap:
                    back.append(row.seq)
                    continue
                self._busy[who] = self._busy.get(who, 0) + 1
                keep.append(row)
        outbox.defer(self.t, back, min(self.s.callback_poll, 0.5))
        self._deferred = bool(back)  # look again at once: rows of other receivers may be due behind them
        return keep

    def _deliver_and_release(self, row: outbox.Delivery) -> None:
        try:
            self.deliver(row)
        except Exception:
            log.exception("delivery %s crashed", row.msg_id)
        finally:
            who = receiver_of(row.url)
            with self._busy_lock:
                self._busy[who] -= 1
                if not self._busy[who]:
                    del self._busy[who]
            self._slots.release()
            self._wake.set()

    def deliver(self, row: outbox.Delivery) -> None:
        """One attempt for one row, and its bookkeeping."""
        body = row.body.encode()
        status: int | None = None
        try:
            hdrs = webhooks.headers(self.s.webhook_secret, row.msg_id, body)
            status = post(self.guard, row.url, body, hdrs, self.s.callback_timeout)
            error = f"HTTP {status}"
        except UnsafeURL as exc:
            error = f"refused: {exc.detail}"
        except (OSError, http.client.HTTPException) as exc:
            error = f"{type(exc).__name__}: {exc}"
        if status is not None and 200 <= status < 300:
            outbox.mark_delivered(self.t, row.seq, status)
            self.metrics.add("callbacks_sent")
            log.info("callback delivered", extra={"msg_id": row.msg_id, "status": status})
            return
        self.metrics.add("callback_failures")
        if status == 410:
            outbox.mark_gone(self.t, row.seq)
            log.info("callback receiver gone (410); not retrying", extra={"msg_id": row.msg_id})
            return
        again = outbox.mark_failed(self.t, row.seq, status, error, self.s.callback_schedule, self.s.callback_jitter)
        log.warning("callback failed", extra={"msg_id": row.msg_id, "error": error, "retry": again,
                                               "attempt": row.attempts + 1})
