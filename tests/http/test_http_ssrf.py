"""SSRF guard (CONTRACT §11): hooks and URIs to loopback, private, link-local, [::1], DNS names resolving to
them, and redirects to them are refused unless allow-listed."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from argus_http.errors import UnsafeURL
from argus_http.net.ssrf import Guard

from conftest import Receiver, running_server, video_body


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]
    return resolve


DNS = fake_dns({
    "public.test": ["93.184.216.34"],
    "internal.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.216.34", "192.168.1.10"],
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x", "http://127.5.6.7:8080/x", "http://10.0.0.1/x", "http://172.16.3.4/x",
    "http://192.168.0.1/x", "http://169.254.169.254/latest/meta-data", "http://[::1]:9000/x",
    "http://[fe80::1]/x", "http://[fc00::1]/x", "http://[::ffff:127.0.0.1]/x", "http://[64:ff9b::a00:1]/x",
    "http://0.0.0.0/x", "http://100.64.0.1/x", "http://224.0.0.1/x", "http://2130706433/x", "http://0x7f.1/x",
    "http://127.1/x", "http://internal.test/x", "http://metadata.test/x", "http://mixed.test/x",
    "http://v6loop.test/x", "http://mapped.test/x", "http://unknown.test/x", "rtmp://10.0.0.5/live",
    "http:///nohost",
])
def test_refused(url: str) -> None:
    with pytest.raises(UnsafeURL):
        Guard([], resolver=DNS).check(url)


def test_localhost_name_refused_by_real_resolver() -> None:
    """A DNS name that really resolves to loopback (no fake resolver)."""
    with pytest.raises(UnsafeURL):
        Guard([]).check("http://localhost:8080/x")


@pytest.mark.parametrize("url", ["http://93.184.216.34/x", "https://public.test/v.mp4", "http://[2606:4700::1]/"])
def test_public_allowed(url: str) -> None:
    Guard([], resolver=DNS).check(url)


def test_allow_list_by_network_and_by_name() -> None:
    g = Guard(["127.0.0.1/32", "internal.test", "fd00::/8"], resolver=DNS)
    g.check("http://127.0.0.1:9/x")
    g.check("http://internal.test/x")
    g.check("http://[fd00::5]/x")
    g.check("http://[::ffff:127.0.0.1]/x")  # the mapped form of an allowed address
    for url in ("http://127.0.0.2/x", "http://[::1]/x", "http://metadata.test/x"):
        with pytest.raises(UnsafeURL):
            g.check(url)


def test_connections_go_to_the_checked_address(receiver: Receiver) -> None:
    """No second DNS lookup: the socket goes to the address that passed the check (anti-rebinding), while
    the Host header keeps the name."""
    answers = iter([["127.0.0.1"], ["10.9.9.9"]])  # a rebinding resolver: different answer each time
    g = Guard(["127.0.0.1/32"], resolver=lambda h, p: next(answers))
    conn = g.connection(f"http://hooks.test:{receiver.port}/r", timeout=5)
    conn.request("POST", "/r", body=b"{}", headers={"Content-Type": "application/json"})
    assert conn.getresponse().status == 200
    conn.close()
    (got,) = receiver.wait(lambda rs: len(rs) == 1)
    assert got.headers["Host"] == f"hooks.test:{receiver.port}"
    with pytest.raises(UnsafeURL):
        g.connection(f"http://hooks.test:{receiver.port}/r", timeout=5)  # the second answer is refused


class Redirector:
    """A loopback server that redirects every GET to ``target``."""

    def __init__(self, target: str) -> None:
        outer = self
        self.target = target

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a) -> None:
                pass

            def do_GET(self) -> None:
                self.send_response(302)
                self.send_header("Location", outer.target)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.srv.shutdown()
        self.srv.server_close()


def test_redirect_to_private_refused() -> None:
    """A redirect from an allowed host to a refused one is refused (each hop is checked)."""
    r = Redirector("http://127.0.0.2:1/secret.mp4")
    try:
        g = Guard(["127.0.0.1/32"])
        with pytest.raises(UnsafeURL):
            g.final_url(f"http://127.0.0.1:{r.port}/v.mp4", timeout=5)
        r.target = "http://169.254.169.254/latest"
        with pytest.raises(UnsafeURL):
            g.final_url(f"http://127.0.0.1:{r.port}/v.mp4", timeout=5)
        r.target = f"http://127.0.0.1:{r.port}/again"  # a loop
        with pytest.raises(UnsafeURL):
            g.final_url(f"http://127.0.0.1:{r.port}/v.mp4", timeout=5)
    finally:
        r.close()


@pytest.fixture
def strict_api(tmp_path: Path, engine):
    """A server with an empty allow-list (the production default)."""
    with running_server(tmp_path, engine, ssrf_allow=[]) as (_, client):
        yield client


@pytest.mark.parametrize("where", ["uri", "final", "op", "segment"])
@pytest.mark.parametrize("target", ["http://127.0.0.1:9/x", "http://10.0.0.1/x", "http://169.254.169.254/x",
                                    "http://[::1]:9/x", "http://localhost:9/x"])
def test_api_refuses_unsafe_urls(strict_api, where: str, target: str) -> None:
    """Every URL of an async request is checked at submit time → 400 invalid parameters, no job created."""
    uri = target if where == "uri" else "http://93.184.216.34/v.mp4"
    op = {"op": "pulp"}
    if where == "op":
        op["hookURL"] = target
    if where == "segment":
        op["hookURL_segment"] = target
    params = {"async": True}
    if where == "final":
        params["hookURL"] = target
    st, _, out = strict_api.call("POST", "/v1/video/s1", video_body(uri, ops=[op], **params))
    assert (st, out) == (400, {"error": "invalid parameters"})
    assert strict_api.call("GET", "/v1/jobs/video")[2] == []


def test_sync_request_redirect_to_private_refused(tmp_path: Path, engine) -> None:
    r = Redirector("http://127.0.0.2:1/v.mp4")
    try:
        with running_server(tmp_path, engine) as (_, api):  # 127.0.0.1/32 allowed, 127.0.0.2 not
            st, _, out = api.call("POST", "/v1/video/r", video_body(f"http://127.0.0.1:{r.port}/v.mp4"))
            assert (st, out) == (400, {"error": "invalid parameters"})
            st, _, out = api.call("POST", "/v1/video/r", video_body(f"http://127.0.0.1:{r.port}/v.mp4",
                                                                    **{"async": True}))
            assert st == 200
            job = api.wait_status(out["job"], {"FAILED"})
            assert job["error"] == "invalid parameters"
    finally:
        r.close()
