"""Argus's own live HLS follower (argus_core/media/hls.py): the parsing and reload schedule as tables, the
follower over a real loopback HTTP server serving a playlist that grows the way an encoder's does."""

from __future__ import annotations

import threading
import time
import urllib.request
from pathlib import Path

import pytest

from argus_core.media import hls
from argus_core.media.hls import MediaPlaylist, Schedule, Segment, Variant, choose_variant, join_at, parse

from .live_publishers import DirServer

BASE = "http://h/live/index.m3u8"


def test_parse_media_playlist():
    pl = parse("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:7\n"
               "#EXTINF:2.0,\na.ts\n#EXT-X-DISCONTINUITY\n#EXTINF:1.5,title\nsub/b.ts\n"
               "#EXTINF:2,\nhttp://cdn/c.ts\n", BASE)
    assert pl == MediaPlaylist(2.0, (Segment(7, "http://h/live/a.ts", 2.0),
                                     Segment(8, "http://h/live/sub/b.ts", 1.5, True),
                                     Segment(9, "http://cdn/c.ts", 2.0)), False)
    ended = parse("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\n/abs.ts\n#EXT-X-ENDLIST\n", BASE)
    assert ended.ended and ended.segments == (Segment(0, "http://h/abs.ts", 4.0),)


@pytest.mark.parametrize("tag, unsupported", [
    ('#EXT-X-KEY:METHOD=AES-128,URI="k.bin"', "EXT-X-KEY"),
    ('#EXT-X-KEY:METHOD=NONE', None),
    ('#EXT-X-MAP:URI="init.mp4"', "EXT-X-MAP"),
    ("#EXT-X-BYTERANGE:1000@0", "EXT-X-BYTERANGE"),
    ("#EXT-X-PROGRAM-DATE-TIME:2026-12-03T00:00:00Z", None),
])
def test_what_the_follower_does_not_read_is_declared(tag, unsupported):
    pl = parse(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n{tag}\n#EXTINF:2,\na.ts\n", BASE)
    assert isinstance(pl, MediaPlaylist) and pl.unsupported == unsupported


def test_parse_master_playlist_and_refuse_other_text():
    variants = parse('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360,CODECS="avc1.4d401e,mp4a.40.2"\n'
                     "360/index.m3u8\n#EXT-X-STREAM-INF:BANDWIDTH=5000000,RESOLUTION=1920x1080\n1080.m3u8\n"
                     "#EXT-X-STREAM-INF:BANDWIDTH=64000\naudio.m3u8\n", BASE)
    assert variants == [Variant("http://h/live/360/index.m3u8", 800000, 360),
                        Variant("http://h/live/1080.m3u8", 5000000, 1080),
                        Variant("http://h/live/audio.m3u8", 64000, None)]
    with pytest.raises(ValueError):
        parse("<html>not found</html>", BASE)


V = Variant


@pytest.mark.parametrize("variants, want", [
    ([V("a", 1, 360), V("b", 2, 720), V("c", 3, 1080)], "b"),  # the tallest at or below 720p
    ([V("a", 1, 720), V("b", 2, 720)], "b"),  # equal height: more bandwidth
    ([V("a", 9, 1080), V("b", 8, 1440)], "a"),  # all above: the shortest
    ([V("a", 1, None), V("b", 3, None), V("c", 2, None)], "b"),  # no sizes: the highest bandwidth
    ([V("a", 1, None), V("b", 9, 1080), V("c", 2, 480)], "c"),  # sized ones decide
])
def test_choose_variant(variants, want):
    assert choose_variant(variants).url == want


def test_join_at_the_live_edge_or_the_start_of_an_ended_playlist():
    segs = tuple(Segment(i, f"s{i}", 1.0) for i in range(5, 9))
    assert join_at(MediaPlaylist(1.0, segs, False)) == 8
    assert join_at(MediaPlaylist(1.0, segs, True)) == 5
    assert join_at(MediaPlaylist(1.0, (), False)) == 0


@pytest.mark.parametrize("target, newest, want", [
    (1.0, 1.0, 10.875),  # a new 1 s segment: due a duration after it appeared (middle of the last 0.25 s step)
    (1.0, None, 10.25),  # nothing new: a quarter target later
    (6.0, 6.0, 15.5),  # 6 s segments: step 1 s (the cap)
    (0.2, 0.2, 10.15),  # tiny segments: step 0.1 s (the floor) and never sooner than one step
    (6.0, None, 11.0),
    (2.0, 0.3, 10.5),  # a short segment (cut at a keyframe) still waits one step
])
def test_schedule(target, newest, want):
    assert Schedule().after(10.0, target, newest) == pytest.approx(want)


# -- the follower over real HTTP ------------------------------------------------------------------------
class Encoder:
    """Writes ``seg<N>.ts`` (bytes naming N) and a sliding live playlist of ``window`` segments, one new
    segment every ``every`` s, from sequence ``first``; ``reset_at``: restart the sequence from 0 there."""

    def __init__(self, root: Path, every: float = 0.2, window: int = 4, first: int = 0, start: int = 3,
                 missing: set[int] = frozenset(), reset_at: int | None = None, stop_after: int | None = None,
                 extra: str = "") -> None:
        self.root, self.every, self.window, self.missing, self.extra = root, every, window, missing, extra
        self.reset_at, self.stop_after = reset_at, stop_after
        self.seqs = list(range(first, first + start))
        self._halt = threading.Event()
        for s in self.seqs:
            self._segment(s)
        self._write()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _segment(self, seq: int) -> None:
        if seq not in self.missing:
            (self.root / f"seg{seq}.ts").write_bytes(f"<{seq}>".encode())

    def _write(self) -> None:
        shown = self.seqs[-self.window:]
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{self.every}",
                 f"#EXT-X-MEDIA-SEQUENCE:{shown[0]}", self.extra]
        for s in shown:
            lines += [f"#EXTINF:{self.every},", f"seg{s}.ts"]
        tmp = self.root / "live.tmp"
        tmp.write_text("\n".join(lines) + "\n")
        tmp.replace(self.root / "live.m3u8")

    def _run(self) -> None:
        n = 0
        while not self._halt.wait(self.every):
            n += 1
            if self.stop_after is not None and n > self.stop_after:
                continue  # the encoder died: the playlist stops growing
            nxt = self.seqs[-1] + 1
            if self.reset_at is not None and nxt == self.reset_at:
                self.seqs = []
                nxt = 0
                self.reset_at = None
            self.seqs.append(nxt)
            self._segment(nxt)
            self._write()

    def close(self) -> None:
        self._halt.set()
        self.thread.join(5)


@pytest.fixture
def site(tmp_path):
    srv = DirServer(tmp_path)
    made: list[Encoder] = []

    def encoder(**kw) -> tuple[Encoder, str]:
        e = Encoder(tmp_path, **kw)
        made.append(e)
        return e, f"http://127.0.0.1:{srv.port}/live.m3u8"

    yield encoder
    for e in made:
        e.close()
    srv.close()


def fetch(url: str):
    return urllib.request.urlopen(url, timeout=5)


def read_segments(f: hls.Follower, n: int, limit_s: float = 10.0) -> list[int]:
    """The first ``n`` segment numbers the follower's byte stream carries."""
    out, buf = [], b""
    end = time.monotonic() + limit_s
    while len(out) < n and time.monotonic() < end:
        data = f.read(4096)
        if not data:
            break
        buf += data
        while b">" in buf:
            head, _, buf = buf.partition(b">")
            out.append(int(head.lstrip(b"<")))
    return out


def test_joins_at_the_live_edge_and_follows_in_order(site):
    enc, url = site(first=10, start=3)
    f = hls.Follower(url, fetch, stall_s=2.0).start()
    got = read_segments(f, 6)
    assert got[0] >= 12, got  # the edge when it joined (12), not the oldest listed (10)
    assert got == list(range(got[0], got[0] + 6))  # then every segment, once, in order


def test_a_playlist_that_stops_growing_is_a_stall(site):
    enc, url = site(every=0.2, stop_after=2)
    f = hls.Follower(url, fetch, stall_s=1.0).start()
    t0 = time.monotonic()
    with pytest.raises(hls.PlaylistStalled):
        read_segments(f, 100, limit_s=10)
    assert time.monotonic() - t0 < 3.0


def test_a_stall_is_three_target_durations_not_the_callers_whole_bound(site):
    enc, url = site(every=0.2, stop_after=1)
    f = hls.Follower(url, fetch, stall_s=30.0).start()
    assert f.silence_s() == 2.0  # 3 × 0.2 s, but 2 s at least
    t0 = time.monotonic()
    with pytest.raises(hls.PlaylistStalled):
        read_segments(f, 100, limit_s=20)
    assert time.monotonic() - t0 < 10.0  # far inside the caller's 30 s


@pytest.mark.parametrize("target, stall, want", [(1.0, 9.5, 3.0), (6.0, 9.5, 9.5), (0.2, 9.5, 2.0), (1.0, 1.0, 1.0)])
def test_silence_bound(target, stall, want):
    f = hls.Follower("http://h/x.m3u8", fetch, stall_s=stall)
    f._target = target
    assert f.silence_s() == want


def test_stop_ends_a_wait_at_once(site):
    enc, url = site(every=0.2, stop_after=0)
    stopped = threading.Event()
    f = hls.Follower(url, fetch, stall_s=30.0, stop=stopped.is_set).start()
    assert read_segments(f, 1) == [2]  # the edge
    threading.Timer(0.3, stopped.set).start()
    t0 = time.monotonic()
    assert f.read(4096) == b""  # waiting for a segment that never comes, until stop()
    assert time.monotonic() - t0 < 2.0  # the issue: a kill stops a live job within 2 s


def test_a_missing_segment_is_skipped(site):
    enc, url = site(every=0.2, missing={5})
    f = hls.Follower(url, fetch, stall_s=2.0).start()
    got = read_segments(f, 5)
    assert 5 not in got and got == sorted(got) and got[-1] >= 6, got
    assert f.skipped >= 1


def test_a_sequence_reset_joins_the_new_playlist(site):
    enc, url = site(every=0.2, first=100, reset_at=104)
    f = hls.Follower(url, fetch, stall_s=2.0).start()
    got = read_segments(f, 6)
    assert got[0] == 102 and 103 in got, got
    after = got[got.index(103) + 1:]
    assert after and after == list(range(after[0], after[0] + len(after))) and after[0] < 100, got


def test_a_master_playlist_follows_one_variant(site, tmp_path):
    enc, url = site()
    (tmp_path / "master.m3u8").write_text(
        "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=9000000,RESOLUTION=1920x1080\nnone1080.m3u8\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=900000,RESOLUTION=1280x720\nlive.m3u8\n")
    f = hls.Follower(url.replace("live.m3u8", "master.m3u8"), fetch, stall_s=2.0).start()
    assert f.url == url
    assert len(read_segments(f, 2)) == 2


def test_an_encrypted_playlist_is_left_to_ffmpeg(site):
    enc, url = site(extra='#EXT-X-KEY:METHOD=AES-128,URI="key.bin"')
    with pytest.raises(hls.Unsupported):
        hls.Follower(url, fetch, stall_s=2.0).start()
