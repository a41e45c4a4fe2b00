"""RTSP and SRT live sources with real publishers on loopback (issue 12), at the source layer: a
:class:`~argus_core.media.source.LiveSource` sampled by :func:`~argus_core.media.live.live_samples`, no engine.

RTSP: FFmpeg's RTSP muxer cannot serve, so the reader listens (``rtsp_flags listen``) and the Debian ``ffmpeg``
CLI pushes a looped clip of real photos to it in real time. SRT: the publisher listens, the reader calls.
"""

from __future__ import annotations

import os
import time

import pytest

from argus_core.media.source import LiveSource

from .live_publishers import (Reader, free_port, live_clip, needs_ffmpeg, publishers, pyav_has_srt,  # noqa: F401
                              rtsp_push_args, srt_args, start_until_running)

pytestmark = needs_ffmpeg


def assert_monotonic(offsets: list[int]) -> None:
    assert offsets, "no frame sampled"
    assert all(b > a for a, b in zip(offsets, offsets[1:])), f"backward or duplicate offset in {offsets}"


def rtsp_reader(url: str) -> Reader:
    return Reader(LiveSource(url, stall_s=5.0, open_timeout=10.0, options={"rtsp_flags": "listen"}))


def test_rtsp_frames_arrive_on_the_job_clock(publishers, live_clip):
    args, url = rtsp_push_args(live_clip, free_port())
    reader = rtsp_reader(url)
    try:
        start_until_running(publishers(args, start=False))
        reader.wait(lambda: len(reader.offsets) >= 6, what="6 RTSP samples")
    finally:
        reader.close()
    assert_monotonic(reader.offsets)
    assert all(o % 500 == 0 for o in reader.offsets), reader.offsets  # mode 0: grid points of the job clock
    assert [type(e).__name__ for e in reader.events][:1] == ["Connected"]
    assert not reader.of("Discontinuity")


def _killed_and_restarted(reader: Reader, pub, start) -> None:
    """Kill the publisher mid-stream, bring it back: the reader reconnects and offsets continue."""
    try:
        start(pub)
        reader.wait(lambda: len(reader.offsets) >= 3, what="3 samples")
        downs = len(reader.of("Disconnected"))  # a first call before the publisher listened may have failed
        pub.kill()
        reader.wait(lambda: len(reader.of("Disconnected")) > downs, what="the disconnect")
        before = len(reader.offsets)
        start(pub)
        reader.wait(lambda: reader.of("Discontinuity") and len(reader.offsets) >= before + 3,
                    what="3 samples after the reconnect")
    finally:
        reader.close()
    assert_monotonic(reader.offsets)
    (brk,) = reader.of("Discontinuity")
    assert brk.reason == "reconnect"
    assert reader.offsets[before] >= brk.offset_ms > reader.offsets[before - 1]
    assert len(reader.of("Connected")) >= 2


def test_rtsp_publisher_killed_and_restarted(publishers, live_clip):
    args, url = rtsp_push_args(live_clip, free_port())
    _killed_and_restarted(rtsp_reader(url), publishers(args, start=False), start_until_running)


_SRT = None


def needs_srt() -> None:
    """SRT is read by PyAV's own FFmpeg when it has libsrt, else relayed by the ffmpeg CLI (media/relay.py)."""
    from argus_core.media.relay import cli_has_protocol

    global _SRT
    if _SRT is None:
        _SRT = pyav_has_srt() or cli_has_protocol("srt")
    if not _SRT:
        pytest.skip("neither PyAV's FFmpeg nor an ffmpeg CLI on this box has the srt protocol")


def _start_listener(pub) -> None:
    pub.start()
    time.sleep(0.5)  # the listener binds its UDP port; the reader's calls until then fail and are retried


def test_srt_frames_arrive_on_the_job_clock(publishers, live_clip):
    needs_srt()
    args, url = srt_args(live_clip, free_port())
    _start_listener(publishers(args, start=False))
    reader = Reader(LiveSource(url, stall_s=5.0, open_timeout=10.0))
    try:
        reader.wait(lambda: len(reader.offsets) >= 6, what="6 SRT samples")
    finally:
        reader.close()
    assert_monotonic(reader.offsets)
    assert all(o % 500 == 0 for o in reader.offsets), reader.offsets


def test_srt_publisher_killed_and_restarted(publishers, live_clip):
    needs_srt()
    args, url = srt_args(live_clip, free_port())
    _killed_and_restarted(Reader(LiveSource(url, stall_s=3.0, open_timeout=5.0)), publishers(args, start=False),
                          _start_listener)


def test_srt_without_the_protocol_is_a_clear_400_not_endless_retries(monkeypatch, tmp_path):
    """Where neither PyAV's FFmpeg (the PyPI wheels) nor an ffmpeg CLI has srt, an srt:// job fails at once
    with 400 and a detail that says why, instead of retrying "Protocol not found" until its live.timeout
    (issue 12). The CLI is taken away by pointing ARGUS_FFMPEG at an executable that is not ffmpeg."""
    from argus_core import Engine
    from argus_core.errors import InvalidRequest
    from argus_core.media.source import protocol_available, require_protocol

    if protocol_available("srt"):
        pytest.skip("this PyAV's FFmpeg has srt: the SRT tests above run instead")
    monkeypatch.setenv("ARGUS_FFMPEG", "/bin/false")
    with pytest.raises(InvalidRequest) as exc:
        require_protocol(f"srt://127.0.0.1:{free_port()}")
    assert "srt" in exc.value.detail and exc.value.public
    body = {"data": {"uri": f"srt://127.0.0.1:{free_port()}"}, "ops": [{"op": "pulp"}],
            "params": {"vframe": {"mode": 0, "interval": 1}, "live": {"timeout": 60}}}
    with Engine(decoders=1, workers=1, ops=["pulp"]) as engine:
        with pytest.raises(InvalidRequest) as exc:  # at submit, not after retrying until live.timeout
            engine.submit(body)
        assert "srt" in exc.value.detail


def _with_audio(clip, tmp_path):
    """The clip with an AAC track, so that non-video packets flow between the video ones (as bigbuckbunny's)."""
    import subprocess

    out = tmp_path / "clip-audio.mp4"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(clip), "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100", "-shortest", "-map", "0:v", "-map", "1:a",
                    "-c:v", "copy", "-c:a", "aac", str(out)], check=True)
    return out


def test_a_consumer_that_holds_the_stream_back_is_not_a_stall(publishers, live_clip, tmp_path):
    """The engine's decoder blocks on a full ring while the worker is busy (8 streams, bench_live): the time
    the consumer keeps the sampler waiting is not the stream's silence. Before the fix the first audio packet
    read after such a wait raised "no video for …", the reader reconnected, and an ``ffmpeg -listen 1``
    publisher (one client only) was gone for good: 5 of 8 streams delivered nothing."""
    import threading

    from argus_core.media.clock import LiveClock
    from argus_core.media.live import Backoff, Connected, Disconnected, live_samples
    from argus_core.request import Sampling

    from .live_publishers import rtmp_args

    args, url = rtmp_args(_with_audio(live_clip, tmp_path), free_port())
    publishers(args)
    source = LiveSource(url, stall_s=2.0, open_timeout=10.0)
    events: list = []
    offsets: list[int] = []
    stop = threading.Event()

    def run() -> None:
        for s in live_samples(source, Sampling(0, 0.5, 0.0, None), stop.is_set, LiveClock(),
                              lambda ev: events.append(ev) if isinstance(ev, (Connected, Disconnected)) else None,
                              Backoff(base=0.5, cap=1.0)):
            offsets.append(s.offset_ms)
            if len(offsets) == 2:
                time.sleep(3.5)   # longer than stall_s: the consumer, not the stream, is slow
            if len(offsets) >= 10:
                stop.set()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    th.join(40)
    stop.set()
    assert len(offsets) >= 10, (offsets, events)
    after = [e for e in events[[type(e) for e in events].index(Connected):] if isinstance(e, Disconnected)]
    assert not after, after
    assert_monotonic(offsets)


def _relays_of(port: int) -> list[int]:
    """PIDs of ffmpeg processes still dialling ``port`` (our relays), from /proc."""
    pids = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                cmd = open(f"/proc/{d}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"ffmpeg") and any(f":{port}?mode=caller".encode() in a for a in cmd):
                pids.append(int(d))
    return pids


def test_srt_relay_without_a_listener_fails_with_why_and_leaves_nothing():
    from argus_core.media.relay import CliRelay, RelayFailed, cli_has_protocol

    if not cli_has_protocol("srt"):
        pytest.skip("no ffmpeg CLI with srt")
    port = free_port()
    relay = CliRelay(f"srt://127.0.0.1:{port}?mode=caller&connect_timeout=300", stall_s=2.0, open_timeout=10.0)
    with pytest.raises(RelayFailed) as exc:
        relay.start()
    assert str(exc.value)  # ffmpeg's own last line (connection setup failure), not an empty error
    assert relay.proc is None and _relays_of(port) == []


def test_srt_relay_is_reaped_with_its_connection(publishers, live_clip):
    needs_srt()
    args, url = srt_args(live_clip, free_port())
    _start_listener(publishers(args, start=False))
    port = int(url.rsplit(":", 1)[1].split("?")[0])
    reader = Reader(LiveSource(url, stall_s=5.0, open_timeout=10.0))
    try:
        reader.wait(lambda: len(reader.offsets) >= 2, what="2 SRT samples")
    finally:
        reader.close()
    deadline = time.monotonic() + 5
    while _relays_of(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _relays_of(port) == []
