"""Issue 10: a slow receiver and a failing receiver do not delay a healthy receiver's callbacks by a second or
more (per-receiver cap on sender threads, a whole-exchange timeout, a claim that outlasts an attempt)."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

from argus_http.queue import tables as dbm
from argus_http.delivery import outbox
from argus_http.queue.tables import Tables, open_database
from argus_http.delivery.sender import Sender, receiver_of
from argus_http.net.ssrf import Guard

from conftest import Receiver, settings_for


class Dripper:
    """A receiver that reads the request, then answers one byte per ``every`` s (never times a read out)."""

    def __init__(self, every: float = 0.5) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.every, self.connections, self.stopping = every, 0, False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        try:
            conn.recv(65536)
            for b in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                time.sleep(self.every)
                conn.sendall(bytes([b]))
        except OSError:
            pass
        finally:
            conn.close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.stopping = True
        self.sock.close()


def _healthy_delays(tmp: Path, healthy: Receiver, adversaries: list[str], n: int = 5) -> list[float]:
    s = settings_for(tmp, callback_timeout=2.0, callback_schedule=[0.2], callback_jitter=0.0, callback_poll=0.2)
    t = Tables(open_database(s.database_url))
    t.create()
    sender = Sender(t, s, Guard(s.ssrf_allow)).start()
    try:
        with t.tx():
            for i, url in enumerate(adversaries):  # older rows, each its own chain (other jobs)
                outbox.enqueue(t, f"bad{i}", f"bad{i}", url, {"i": i}, chain=f"bad{i}", window=60)
        sender.wake()
        time.sleep(0.3)  # the adversaries now hold what they can
        sent = {}
        with t.tx():
            for i in range(n):
                outbox.enqueue(t, f"ok{i}", f"ok{i}", healthy.url(f"/ok{i}"), {"i": i}, chain=f"ok{i}", window=60)
                sent[f"/ok{i}"] = time.monotonic()
        sender.wake()
        got = healthy.wait(lambda rs: len({r.path for r in rs if r.path.startswith("/ok")}) >= n, timeout=30)
        first = {}
        for r in got:
            first.setdefault(r.path, r.at)
        return [first[p] - sent[p] for p in sent]
    finally:
        sender.stop(timeout=10)
        t.close()


def test_slow_and_failing_receivers_do_not_delay_a_healthy_one(tmp_path: Path) -> None:
    healthy, failing, slow = Receiver(), Receiver(), Dripper(every=0.5)
    failing.status_for = lambda path, n: 500
    try:
        alone = _healthy_delays(tmp_path / "alone", healthy, [])
        healthy.requests.clear()
        bad = [slow.url(f"/s{i}") for i in range(12)] + [failing.url(f"/f{i}") for i in range(12)]
        crowded = _healthy_delays(tmp_path / "crowded", healthy, bad)
        assert max(crowded) - max(alone) < 1.0, (alone, crowded)
        assert slow.connections <= 2  # at most one in flight (cap 1) in the time the test ran: never 4 at once
    finally:
        healthy.stop(), failing.stop(), slow.close()


def test_a_dripping_receiver_is_cut_at_the_timeout_and_its_row_not_claimed_twice(tmp_path: Path) -> None:
    slow = Dripper(every=0.4)
    s = settings_for(tmp_path, callback_timeout=1.0, callback_schedule=[30.0], callback_jitter=0.0, callback_poll=0.1)
    t = Tables(open_database(s.database_url))
    t.create()
    sender = Sender(t, s, Guard(s.ssrf_allow)).start()
    try:
        with t.tx():
            outbox.enqueue(t, "j", "m1", slow.url("/drip"), {}, chain="c", window=60)
        sender.wake()
        deadline = time.monotonic() + 10
        while t.Outbox.get(t.Outbox.msg_id == "m1").attempts < 1:
            assert time.monotonic() < deadline, "a dripping answer was never cut"
            time.sleep(0.05)
        r = t.Outbox.get(t.Outbox.msg_id == "m1")
        assert r.status == dbm.PENDING and "within 1.0 s" in (r.last_error or ""), r.last_error
        assert slow.connections == 1
    finally:
        sender.stop(timeout=10)
        t.close()
        slow.close()


def test_receiver_key():
    assert receiver_of("http://A.example:81/x") == "a.example:81"
    assert receiver_of("https://a.example/x") == "a.example:443"
