"""Issue 10: every resource an HLS playlist names passes the same guard (one test per URI-carrying tag), and
a playlist inside the media root cannot name files outside it.

Real sockets: an origin on 127.0.0.1 (allowed), one on 127.0.0.2 (internal), and a bare TCP trap on
127.0.0.1 that counts every connection FFmpeg would make to it directly (``httpproxy://``, ``tcp://``)."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Iterator

import pytest

from argus_core.errors import ArgusError
from argus_core.media.nested import flat_formats, protocols_for
from argus_core.media.source import open_video
from argus_http.net.egress import EgressProxy
from argus_http.net.ssrf import Guard
from conftest import make_video, running_server, video_body
from test_http_egress import Origin


class Trap:
    """A TCP listener that counts connections (any byte FFmpeg sends it is a bypass of the proxy)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hls-media")
    make_video(root / "seg.ts", 2, fps=25, gop=25)
    (root / "good.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg.ts\n#EXT-X-ENDLIST\n")
    return root


@pytest.fixture
def world(media) -> Iterator[tuple[Origin, Origin, Trap, EgressProxy]]:
    try:
        inside = Origin(media, "127.0.0.2")
    except OSError:
        pytest.skip("127.0.0.2 not bindable here")
    public, trap = Origin(media), Trap()
    with EgressProxy(Guard(["127.0.0.1/32"]), idle_timeout=10, connect_timeout=5) as proxy:
        yield public, inside, trap, proxy
    public.close()
    inside.close()
    trap.close()


MEDIA_PL = "#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-TARGETDURATION:2\n{tag}\n#EXTINF:2.0,\nseg.ts\n#EXT-X-ENDLIST\n"
MASTER_PL = "#EXTM3U\n{tag}\n#EXT-X-STREAM-INF:BANDWIDTH=100000\ngood.m3u8\n"
TAGS = {
    "EXT-X-KEY": MEDIA_PL.format(tag='#EXT-X-KEY:METHOD=AES-128,URI="{u}"'),
    "EXT-X-MAP": MEDIA_PL.format(tag='#EXT-X-MAP:URI="{u}"'),
    "EXT-X-SESSION-KEY": MASTER_PL.format(tag='#EXT-X-SESSION-KEY:METHOD=AES-128,URI="{u}"'),
    "EXT-X-MEDIA": "#EXTM3U\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"x\",DEFAULT=YES,URI=\"{u}\"\n"
                   "#EXT-X-STREAM-INF:BANDWIDTH=100000,AUDIO=\"a\"\ngood.m3u8\n",
    "EXT-X-STREAM-INF": "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=100000\n{u}\n",
    "EXT-X-I-FRAME-STREAM-INF": MASTER_PL.format(tag='#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=1000,URI="{u}"'),
    "EXT-X-PART": MEDIA_PL.format(tag='#EXT-X-PART:DURATION=1.0,URI="{u}"'),
    "EXT-X-PRELOAD-HINT": MEDIA_PL.format(tag='#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{u}"'),
    "EXT-X-RENDITION-REPORT": MEDIA_PL.format(tag='#EXT-X-RENDITION-REPORT:URI="{u}",LAST-MSN=1'),
    "EXTINF segment": "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{u}\n#EXT-X-ENDLIST\n",
}
EVIL = ["httpproxy://127.0.0.1:{trap}/127.0.0.2:{inside}", "tcp://127.0.0.1:{trap}", "tls://127.0.0.1:{trap}",
        "crypto+httpproxy://127.0.0.1:{trap}/x", "http://127.0.0.2:{inside}/seg.ts",
        "crypto+http://127.0.0.2:{inside}/seg.ts", "file://{media}/seg.ts", "{media}/seg.ts"]


def _frames(url: str, proxy_url: str) -> int:
    try:
        container, stream = open_video(url, 10, {"http_proxy": proxy_url})
    except ArgusError:
        return -1
    try:
        return sum(1 for _ in container.decode(stream))
    except Exception:
        return -2
    finally:
        container.close()


@pytest.mark.parametrize("tag", list(TAGS))
def test_every_uri_carrying_hls_tag_passes_the_guard(world, media, tag):
    public, inside, trap, proxy = world
    inside_port = inside.url.rsplit(":", 1)[1]
    for i, evil in enumerate(EVIL):
        u = evil.format(trap=trap.port, inside=inside_port, media=media)
        (media / f"evil{i}.m3u8").write_text(TAGS[tag].replace("{u}", u))
        _frames(f"{public.url}/evil{i}.m3u8", proxy.url)
    assert trap.accepted == 0, f"{tag}: FFmpeg connected past the egress proxy"
    assert inside.hits == [], f"{tag}: the internal host was reached"
    assert not [h for h in public.hits if "seg.ts" not in h and "m3u8" not in h]


def test_a_clean_hls_source_still_plays_through_the_proxy(world):
    public, _, trap, proxy = world
    assert _frames(public.url + "/good.m3u8", proxy.url) == 50
    assert trap.accepted == 0


def test_local_playlist_cannot_leave_the_media_root(tmp_path: Path):
    root, outside = tmp_path / "media", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    make_video(outside / "secret.ts", 2, fps=25, gop=25)
    make_video(root / "seg.ts", 2, fps=25, gop=25)
    for name, target in [("up.m3u8", "../outside/secret.ts"), ("abs.m3u8", str(outside / "secret.ts")),
                         ("fileurl.m3u8", (outside / "secret.ts").as_uri()), ("net.m3u8", "http://127.0.0.1:9/x.ts")]:
        (root / name).write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n{target}\n#EXT-X-ENDLIST\n")
        with pytest.raises(ArgusError) as err:
            c, s = open_video(str(root / name), 10, {"argus_media_root": str(root)})
            c.close()
        assert err.value.status == 424, name
    (root / "ok.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\nseg.ts\n#EXT-X-ENDLIST\n")
    c, s = open_video(str(root / "ok.m3u8"), 10, {"argus_media_root": str(root)})
    with c:
        assert sum(1 for _ in c.decode(s)) == 50


def test_service_refuses_a_media_root_playlist_naming_an_outside_file(tmp_path: Path, media_dir: Path) -> None:
    from argus_core import Engine

    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    make_video(outside / "secret.ts", 2, fps=25, gop=25)
    (root / "p.m3u8").write_text("#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n../outside/secret.ts\n"
                                 "#EXT-X-ENDLIST\n")
    with Engine(decoders=1, workers=1, ops=["pulp"], source_options={"argus_media_root": str(root)}) as e:
        with running_server(tmp_path, e, media_root=str(root)) as (_, api):
            st, _, out = api.call("POST", "/v1/video/h1", video_body((root / "p.m3u8").as_uri()))
            assert st == 424 and out["error"] == "cannot find the video", out


@pytest.mark.parametrize("uri,want", [
    ("/v.mp4", "file"), ("file:///v.mp4", "file"), ("http://h/v.mp4", "http,tcp"),
    ("https://h/v.mp4", "https,tls,tcp"), ("rtmp://h/live", "rtmp,tcp"), ("srt://h:1", "srt,udp")])
def test_protocol_whitelist_per_kind(uri, want):
    assert protocols_for(uri, proxied=False) == want
    assert "httpproxy" not in protocols_for(uri, proxied=False)
    assert "hls" not in flat_formats().split(",") and "concat" not in flat_formats().split(",")
