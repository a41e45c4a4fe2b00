"""Live streams end to end (issue 12) with real publishers on loopback: the ffmpeg CLI publishing a looped
clip of real photos in real time; faults injected by killing, pausing and restarting it."""

from __future__ import annotations

import threading
import time

import pytest

from argus_core import Engine
from argus_core.events import Discontinuity, JobFinished, LiveStatus, SegmentClosed

from .live_publishers import (free_port, hls_args, http_ts_args, live_clip, needs_ffmpeg, publishers,  # noqa: F401
                              rtmp_args, DirServer)

pytestmark = needs_ffmpeg


@pytest.fixture(scope="module")
def engine():
    with Engine(decoders=1, workers=1, ops=["pulp"]) as e:
        yield e


def req(uri, interval=1.0, mode=0, segment=None, **live):
    """A live pulp request; segments are 1 s windows (segment mode 1) so they close as the stream runs."""
    return {"data": {"uri": uri},
            "params": {"vframe": {"mode": mode, "interval": interval}, "live": live,
                       "segment": segment or {"mode": 1, "interval": 1.0}},
            "ops": [{"op": "pulp"}]}


def collect(job, until, timeout=60.0):
    """Events of ``job`` until ``until(events)`` is true (then cancel) or the job ends."""
    events = []
    cancelled = False
    for ev in job.events(timeout=timeout):
        events.append(ev)
        if not cancelled and until(events):
            job.cancel()
            cancelled = True
    return events


def cut_offsets(events):
    return [c.offset for ev in events if isinstance(ev, SegmentClosed) for c in ev.segment.cuts]


def assert_monotonic(offsets):
    assert offsets, "no frame sampled"
    assert all(b > a for a, b in zip(offsets, offsets[1:])), f"backward or duplicate offset in {offsets}"


def n_cuts(n):
    return lambda evs: len(cut_offsets(evs)) >= n


def test_rtmp_interval_grid(engine, publishers, live_clip):
    args, url = rtmp_args(live_clip, free_port())
    publishers(args)
    job = engine.submit(req(url, interval=0.5, segment={"mode": 1, "interval": 1.0}))
    events = collect(job, n_cuts(6))
    offs = cut_offsets(events)
    assert_monotonic(offs)
    assert all(o % 500 == 0 for o in offs), offs  # mode 0: grid points of the job clock
    segs = [ev.segment for ev in events if isinstance(ev, SegmentClosed)]
    assert all(s.offset_end - s.offset_begin < 1000 for s in segs)  # segment mode 1: 1 s windows
    assert any(isinstance(ev, LiveStatus) and ev.connected for ev in events)
    assert isinstance(events[-1], JobFinished)


def events_until(job, pred, timeout=40.0, into=None):
    """Read events until ``pred(events)`` (returns them; the job keeps running)."""
    events = [] if into is None else into
    deadline = time.monotonic() + timeout
    try:
        for ev in job.events(timeout=timeout):
            events.append(ev)
            if pred(events) or isinstance(ev, JobFinished):
                return events
            assert time.monotonic() < deadline, "timed out waiting for live events"
    except BaseException:
        job.cancel()  # a live job never ends by itself: free the decoder for the next test
        raise
    return events


def finish(job, events):
    job.cancel()
    events.extend(job.events(timeout=30))
    return events


def breaks(events):
    return [ev for ev in events if isinstance(ev, Discontinuity)]


def pts_break(events):
    # FFmpeg's MPEG-TS wrap correction may turn a step back into a huge step forward: either is a jump
    return any(e.reason in ("pts backwards", "pts jump") for e in breaks(events))


def test_publisher_killed_and_restarted(engine, publishers, live_clip):
    args, url = rtmp_args(live_clip, free_port())
    pub = publishers(args)
    job = engine.submit(req(url, interval=0.5))
    events = events_until(job, n_cuts(3))
    pub.kill()
    time.sleep(1.0)
    pub.start()
    before = len(cut_offsets(events))
    events_until(job, lambda evs: breaks(evs) and len(cut_offsets(evs)) >= before + 3, into=events)
    finish(job, events)
    assert_monotonic(cut_offsets(events))
    assert [b.reason for b in breaks(events)] == ["reconnect"]
    b = breaks(events)[0]
    # the segment open at the discontinuity closed before it, and offsets continue after it
    segs = [ev.segment for ev in events if isinstance(ev, SegmentClosed)]
    assert not any(s.offset_begin < b.offset_ms <= s.offset_end for s in segs)
    assert any(isinstance(ev, LiveStatus) and not ev.connected for ev in events)


def test_publisher_paused_is_a_stall(engine, publishers, live_clip):
    args, url = rtmp_args(live_clip, free_port())
    pub = publishers(args)
    job = engine.submit(req(url, interval=1.0))
    events = events_until(job, n_cuts(2))
    pub.stop()  # SIGSTOP: the TCP connection stays open, nothing more arrives
    k = len(events)
    events_until(job, lambda evs: any(isinstance(e, LiveStatus) and not e.connected for e in evs[k:]), into=events)
    down = [e for e in events[k:] if isinstance(e, LiveStatus) and not e.connected][0]
    assert "stall" in down.reason or "error" in down.reason, down.reason
    pub.cont()
    finish(job, events)
    assert_monotonic(cut_offsets(events))


def test_first_connect_refused_then_publisher_appears(engine, publishers, live_clip):
    args, url = rtmp_args(live_clip, free_port())
    pub = publishers(args, start=False)
    job = engine.submit(req(url, interval=1.0))
    events = events_until(job, lambda evs: any(isinstance(e, LiveStatus) and not e.connected for e in evs))
    assert "connect failed" in [e for e in events if isinstance(e, LiveStatus)][-1].reason
    pub.start()
    events_until(job, n_cuts(2), into=events)
    finish(job, events)
    assert_monotonic(cut_offsets(events))
    assert isinstance(events[-1], JobFinished) and events[-1].cancelled


def test_ts_near_33_bit_wrap(engine, publishers, live_clip):
    # pts start 3 s before 2^33/90 kHz: the wrap comes after ~3 s of stream
    args, url = http_ts_args(live_clip, free_port(), "-output_ts_offset", "95440.7")
    publishers(args)
    time.sleep(0.3)
    job = engine.submit(req(url, interval=0.5, timeout=5))
    events = finish(job, events_until(job, n_cuts(12)))
    offs = cut_offsets(events)
    assert_monotonic(offs)
    assert all(b - a <= 1500 for a, b in zip(offs, offs[1:])), offs  # no gap: the wrap costs at most a frame


def _ts(tmp, clip, name, offset):
    import subprocess

    from .live_publishers import FFMPEG
    out = tmp / name
    subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(clip), "-c", "copy", "-output_ts_offset",
                    str(offset), "-f", "mpegts", str(out)], check=True)
    return out


def test_backward_pts_jump(engine, tmp_path, live_clip):
    # a concatenation: 4 s at pts 100 s, then the same 4 s at pts 0 — served as a live HTTP stream
    a, b = _ts(tmp_path, live_clip, "a.ts", 100), _ts(tmp_path, live_clip, "b.ts", 0)
    (tmp_path / "cat.ts").write_bytes(a.read_bytes() + b.read_bytes())
    srv = DirServer(tmp_path)
    try:
        job = engine.submit(req(f"http://127.0.0.1:{srv.port}/cat.ts", interval=0.2))
        events = finish(job, events_until(job, pts_break))
    finally:
        srv.close()
    assert_monotonic(cut_offsets(events))
    assert pts_break(events)


class GrowingPlaylist:
    """A live HLS playlist written the way an encoder does: one more segment listed every ``every`` s."""

    def __init__(self, path, head: list[str], entries: list[list[str]], listed: int = 2, every: float = 1.0):
        self.path, self.head, self.entries, self.every = path, head, entries, every
        self.listed = listed
        self._halt = threading.Event()
        self._write()
        self.thread = threading.Thread(target=self._grow, daemon=True)
        self.thread.start()

    def _write(self) -> None:
        lines = self.head + [ln for e in self.entries[:self.listed] for ln in e]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")  # no ENDLIST: a live playlist
        tmp.replace(self.path)

    def _grow(self) -> None:
        while self.listed < len(self.entries) and not self._halt.wait(self.every):
            self.listed += 1
            self._write()

    def close(self) -> None:
        self._halt.set()
        self.thread.join(5)


def test_hls_discontinuity(engine, tmp_path, live_clip):
    import subprocess

    from .live_publishers import FFMPEG
    head = ["#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:2", "#EXT-X-MEDIA-SEQUENCE:0"]
    entries: list[list[str]] = []
    for part, offset in (("a", 100), ("b", 0)):
        subprocess.run([FFMPEG, "-loglevel", "error", "-y", "-i", str(live_clip), "-c", "copy", "-output_ts_offset",
                        str(offset), "-f", "hls", "-hls_time", "1", "-hls_list_size", "0",
                        "-hls_segment_filename", str(tmp_path / f"{part}%d.ts"), str(tmp_path / f"{part}.m3u8")],
                       check=True)
        lines = (tmp_path / f"{part}.m3u8").read_text().splitlines()
        for i, ln in enumerate(lines):
            if ln.endswith(".ts"):
                entry = [lines[i - 1], ln]
                if part == "b" and not any(e[-1].startswith("b") for e in entries):
                    entry.insert(0, "#EXT-X-DISCONTINUITY")
                entries.append(entry)
    # the follower joins at the live edge: the playlist grows in real time past the tag, as an encoder's would
    pl = GrowingPlaylist(tmp_path / "live.m3u8", head, entries)
    srv = DirServer(tmp_path)
    try:
        job = engine.submit(req(f"http://127.0.0.1:{srv.port}/live.m3u8", interval=0.5))
        events = finish(job, events_until(job, lambda evs: pts_break(evs) and any(
            o >= b.offset_ms for o in cut_offsets(evs) for b in breaks(evs))))
    finally:
        pl.close()
        srv.close()
    assert_monotonic(cut_offsets(events))
    # the jump is seen within the first connection (FFmpeg's wrap correction may turn 100 s → 0 s into a
    # step forward across 2^33), not only as the reconnect after the playlist stops growing
    first = next(e for e in breaks(events) if e.reason in ("pts backwards", "pts jump"))
    assert breaks(events).index(first) == 0, [b.reason for b in breaks(events)]
    # frames from both sides of the tag were sampled, and no segment spans the discontinuity
    offs = cut_offsets(events)
    assert any(o < first.offset_ms for o in offs) and any(o >= first.offset_ms for o in offs), (offs, first)
    segs = [ev.segment for ev in events if isinstance(ev, SegmentClosed)]
    assert not any(s.offset_begin < first.offset_ms <= s.offset_end for s in segs)


def test_live_timeout_finishes_with_what_it_has(engine, publishers, live_clip):
    args, url = rtmp_args(live_clip, free_port())
    pub = publishers(args)
    job = engine.submit(req(url, interval=1.0, timeout=4))  # counted from the job's start until a frame comes
    events = events_until(job, n_cuts(2))
    assert not isinstance(events[-1], JobFinished), events[-1]
    pub.kill()
    events.extend(job.events(timeout=40))  # ends by itself: no frame for 4 s
    final = events[-1]
    assert isinstance(final, JobFinished) and final.error is None and not final.cancelled
    assert final.result["pulp"].segments and final.frames >= 2


def test_live_timeout_without_any_frame_fails(engine):
    job = engine.submit(req(f"rtmp://127.0.0.1:{free_port()}/live/none", interval=1.0, timeout=2))
    final = job.wait(40)
    assert final.error is not None and final.error.status == 424
