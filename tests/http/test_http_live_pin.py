"""rtmp/rtsp/srt sources are resolved once, checked by the SSRF guard, and dialled by the checked address
(issue 12 "SSRF"): FFmpeg resolves those hosts itself and no proxy can stand in front of it, so the service
hands the engine a URI pinned to the addresses it checked.

Real components: the Debian ``ffmpeg`` CLI publishing RTMP on loopback, the real resolver for ``localhost``.
The only fake is a resolver that changes its answer between two lookups (DNS rebinding, injected).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from argus_core.media.source import PIN_MARK, LiveSource, dial_of
from argus_http.config import load_settings
from argus_http.errors import UnsafeURL
from argus_http.net.sources import engine_source
from argus_http.net.ssrf import Guard
from tests.live_publishers import Reader, free_port, live_clip, needs_ffmpeg, publishers, rtmp_args  # noqa: F401


def settings(tmp_path: Path):
    return load_settings(env={}, overrides={"data_dir": str(tmp_path / "data")})


class Rebinding:
    """A resolver whose answers change from one lookup to the next (the attacker's DNS server)."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


@pytest.mark.parametrize("uri, addrs, dialled", [
    ("rtmp://user:pw@cdn.test/live/key?token=s3cret", ["93.184.216.34"],
     ["rtmp://user:pw@93.184.216.34/live/key?token=s3cret"]),
    ("rtsp://cam.test:8554/stream/1?ch=2", ["2606:4700:4700::1111", "1.1.1.1"],
     ["rtsp://[2606:4700:4700::1111]:8554/stream/1?ch=2", "rtsp://1.1.1.1:8554/stream/1?ch=2"]),
    ("srt://relay.test:9000?streamid=#!::r=live&latency=20", ["9.9.9.9"],
     ["srt://9.9.9.9:9000?streamid=#!::r=live&latency=20"]),
    ("rtmp://93.184.216.34:1936/live/x", ["93.184.216.34"], ["rtmp://93.184.216.34:1936/live/x"]),
])
def test_the_dialled_url_carries_the_ip_literal(uri: str, addrs: list[str], dialled: list[str]) -> None:
    pinned = Guard([], resolver=lambda h, p: addrs).pinned(uri)
    attempts = LiveSource(pinned).attempts()
    # the host name never reaches FFmpeg: port, path, query, user info kept; IPv6 in brackets; in order
    assert [url for url, _ in attempts] == dialled
    if uri.startswith("rtmp://user"):
        # RTMP servers with virtual hosts choose one by the tcUrl: it keeps the name
        assert all(opts["rtmp_tcurl"] == "rtmp://cdn.test/live" for _, opts in attempts)


def test_a_forged_pin_in_the_request_is_dropped() -> None:
    """A request cannot bring its own "checked" address: the service pins from scratch, from its own lookup."""
    forged = "rtmp://cdn.test/live/x" + PIN_MARK + "host=cdn.test&addr=127.0.0.1"
    assert dial_of(forged).urls == ("rtmp://127.0.0.1/live/x",)  # what the engine would dial, unchecked
    repinned = Guard([], resolver=lambda h, p: ["93.184.216.34"]).pinned(forged)
    assert dial_of(repinned).urls == ("rtmp://93.184.216.34/live/x",)
    assert "127.0.0.1" not in repinned
    # and on a scheme that is never pinned the text is not read as a pin at all
    assert dial_of("http://example.test/live.ts" + forged[forged.index("#"):]).urls[0].startswith("http://example")


def test_every_address_is_checked(tmp_path: Path) -> None:
    dns = Rebinding(["127.0.0.1", "10.0.0.9"])
    with pytest.raises(UnsafeURL):
        engine_source("rtmp://mixed.test/live/x", settings(tmp_path), Guard(["127.0.0.1/32"], resolver=dns))


@needs_ffmpeg
def test_dns_rebinding_is_not_dialled(tmp_path: Path, publishers, live_clip) -> None:
    """The name answers an allowed address at check time and a forbidden one after: the engine never asks again,
    it dials the checked address. ``rebind.test`` has no real DNS record (``.test`` is reserved), so a stream
    that plays proves FFmpeg did not resolve the name itself. The first checked address (``::1``) has no
    publisher: the next one is tried."""
    port = free_port()
    args, _ = rtmp_args(live_clip, port)
    publishers(args)
    dns = Rebinding(["::1", "127.0.0.1"], ["10.0.0.9"])
    guard = Guard(["127.0.0.1/32", "::1/128"], resolver=dns)
    pinned = engine_source(f"rtmp://rebind.test:{port}/live/x", settings(tmp_path), guard)
    assert dns.calls == ["rebind.test"]
    urls = [u for u, _ in LiveSource(pinned).attempts()]
    assert urls == [f"rtmp://[::1]:{port}/live/x", f"rtmp://127.0.0.1:{port}/live/x"]
    reader = Reader(LiveSource(pinned, stall_s=5.0, open_timeout=5.0))
    try:
        reader.wait(lambda: len(reader.offsets) >= 3, what="3 RTMP samples")
    finally:
        reader.close()
    assert dns.calls == ["rebind.test"]  # the rebinding answer was never asked for
    assert all(b > a for a, b in zip(reader.offsets, reader.offsets[1:]))
    with pytest.raises(UnsafeURL):
        guard.pinned(f"rtmp://rebind.test:{port}/live/x")  # asked again, the name is refused


@needs_ffmpeg
def test_a_host_name_still_plays(tmp_path: Path, publishers, live_clip) -> None:
    """``localhost`` through the real resolver: pinned to its loopback address, the stream plays, and RTMP's
    tcUrl still names ``localhost``."""
    port = free_port()
    args, _ = rtmp_args(live_clip, port)
    publishers(args)
    pinned = engine_source(f"rtmp://localhost:{port}/live/x", settings(tmp_path),
                           Guard(["127.0.0.1/32", "::1/128"]))
    attempts = LiveSource(pinned).attempts()
    assert all("localhost" not in url for url, _ in attempts), attempts
    assert all(opts["rtmp_tcurl"] == f"rtmp://localhost:{port}/live" for _, opts in attempts)
    reader = Reader(LiveSource(pinned, stall_s=5.0, open_timeout=5.0))
    try:
        reader.wait(lambda: len(reader.offsets) >= 4, what="4 RTMP samples")
    finally:
        reader.close()
    assert all(b > a for a, b in zip(reader.offsets, reader.offsets[1:]))
