"""The egress proxy: every connection FFmpeg makes for an http(s) source passes the SSRF guard.

Real sockets only: media servers on 127.0.0.1 (allowed) and 127.0.0.2 (not allowed: the "internal"
host), FFmpeg opening through the proxy, and counts of the requests each server really received."""

from __future__ import annotations

import http.server
import socket
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from argus_core.errors import ArgusError
from argus_core.media.source import open_video
from argus_http.net.egress import EgressProxy
from argus_http.net.ssrf import Guard
from conftest import running_server, video_body

from conftest import make_video


class Origin:
    """A loopback HTTP server that serves a folder, answers ``/redirect?to=URL`` with 302, and counts hits."""

    def __init__(self, root: Path, host: str = "127.0.0.1") -> None:
        origin = self
        self.hits: list[str] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                origin.hits.append(self.path)
                if self.path.startswith("/sneaky?to=") and self.headers.get("Range") == "bytes=0-0":
                    # answers the service's redirect probe innocently, redirects everyone else
                    self.send_response(206)
                    self.send_header("Content-Range", "bytes 0-0/1000")
                    self.send_header("Content-Length", "1")
                    self.end_headers()
                    self.wfile.write(b"\0")
                    return
                if self.path.startswith(("/redirect?to=", "/sneaky?to=")):
                    self.send_response(302)
                    self.send_header("Location", self.path.split("=", 1)[1])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = root / self.path.lstrip("/")
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("egress-media")
    make_video(root / "seg.ts", 2, fps=25, gop=25)
    make_video(root / "clip.mp4", 2, fps=25, gop=25)
    return root


@pytest.fixture
def servers(media) -> Iterator[tuple[Origin, Origin]]:
    try:
        inside = Origin(media, "127.0.0.2")
    except OSError:
        pytest.skip("127.0.0.2 not bindable here")
    public = Origin(media)
    yield public, inside
    public.close()
    inside.close()


@pytest.fixture
def proxy() -> Iterator[EgressProxy]:
    # 127.0.0.1 stands for the public internet; 127.0.0.2 for an internal host
    with EgressProxy(Guard(["127.0.0.1/32"]), idle_timeout=10, connect_timeout=5) as p:
        yield p


def _get(url: str, proxy_url: str) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy_url}))
    try:
        with opener.open(url, timeout=10) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def _playlist(media: Path, name: str, segment_url: str) -> None:
    (media / name).write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
                              f"#EXTINF:2.0,\n{segment_url}\n#EXT-X-ENDLIST\n")


def _frames(url: str, proxy_url: str | None) -> int:
    options = {"http_proxy": proxy_url} if proxy_url else None
    container, stream = open_video(url, 10, options)
    try:
        return sum(1 for _ in container.decode(stream))
    finally:
        container.close()


def test_proxy_forwards_allowed_and_refuses_internal(servers, proxy):
    public, inside = servers
    assert _get(public.url + "/clip.mp4", proxy.url) == 200
    assert _get(inside.url + "/clip.mp4", proxy.url) == 403
    assert inside.hits == [] and proxy.refused == 1


def test_proxy_connects_to_the_address_it_checked(servers):
    # "media.test" exists only in the guard's resolver: reaching the server proves the proxy dialled the
    # checked address instead of asking DNS again (what a rebinding attack would exploit)
    public, _ = servers
    port = int(public.url.rsplit(":", 1)[1])
    guard = Guard(["127.0.0.1/32"], resolver=lambda host, p: ["127.0.0.1"] if host == "media.test" else [])
    with EgressProxy(guard) as p:
        assert _get(f"http://media.test:{port}/clip.mp4", p.url) == 200
    assert public.hits == ["/clip.mp4"]


def test_connect_tunnel_to_internal_address_is_refused(servers, proxy):
    _, inside = servers
    host, port = inside.url.removeprefix("http://").split(":")
    with socket.create_connection(("127.0.0.1", int(proxy.url.rsplit(":", 1)[1])), 5) as s:
        s.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        assert s.recv(1024).startswith(b"HTTP/1.1 403")
    assert inside.hits == []


def test_ffmpeg_redirect_to_internal_host_goes_nowhere(servers, proxy):
    public, inside = servers
    assert _frames(public.url + "/clip.mp4", proxy.url) == 50  # control: the proxy carries real video
    with pytest.raises(ArgusError):
        _frames(f"{public.url}/redirect?to={inside.url}/clip.mp4", proxy.url)
    assert inside.hits == []
    # without the proxy FFmpeg would have followed it: the hole this closes
    _frames(f"{public.url}/redirect?to={inside.url}/clip.mp4", None)
    assert inside.hits == ["/clip.mp4"]


def test_hls_segment_on_internal_host_is_not_fetched(servers, proxy, media):
    public, inside = servers
    _playlist(media, "good.m3u8", public.url + "/seg.ts")
    _playlist(media, "bad.m3u8", inside.url + "/seg.ts")
    assert _frames(public.url + "/good.m3u8", proxy.url) == 50
    try:
        assert _frames(public.url + "/bad.m3u8", proxy.url) == 0
    except ArgusError:
        pass  # refusing to open at all is as good
    assert inside.hits == []


@pytest.mark.parametrize("form", ["file://{p}", "file:{p}", "{p}", "crypto+file://{p}", "crypto:{p}"])
def test_hls_playlist_cannot_read_local_files(servers, media, form):
    # An http(s) source must never make FFmpeg read a local file. FFmpeg's HLS demuxer refuses these
    # today on its own; Argus also passes a protocol whitelist, and this pins the outcome either way.
    public, _ = servers
    _playlist(media, "local.m3u8", form.format(p=media / "seg.ts"))
    try:
        assert _frames(public.url + "/local.m3u8", None) == 0
    except ArgusError:
        pass


def test_service_analyses_http_source_and_blocks_late_redirect(tmp_path, engine, servers):
    # Through the real service: an http source is analysed via the proxy; a source that passes the
    # service's redirect probe and only then redirects to an internal host fails with the documented
    # 424, and the internal host never sees a request.
    public, inside = servers
    with running_server(tmp_path, engine) as (_, api):
        st, _, out = api.call("POST", "/v1/video/s1", video_body(public.url + "/clip.mp4"))
        assert st == 200, out
        assert out["pulp"]["labels"] and out["pulp"]["segments"], out
        before = engine.egress.refused
        st, _, out = api.call("POST", "/v1/video/s2", video_body(f"{public.url}/sneaky?to={inside.url}/clip.mp4"))
        assert (st, out) == (424, {"error": "cannot find the video"})
    assert inside.hits == []
    assert engine.egress.refused > before


def _record_engine(**kwargs):
    return kwargs


def test_make_engine_hands_ffmpeg_the_proxy(tmp_path):
    from argus_http.server import make_engine
    from conftest import settings_for

    with EgressProxy(Guard([])) as p:
        got = make_engine(settings_for(tmp_path, engine="test_http_egress:_record_engine"), p)
        assert got["source_options"]["http_proxy"] == p.url  # plus argus_* bounds (max_download, media root)


def test_saved_frames_are_fetched_through_the_proxy(servers, proxy):
    # params.save re-opens the source in the service: that must pass the guard as well
    from argus_core.media.sampler import FrameGrabber
    from argus_core.media.source import source_for

    public, inside = servers
    grabber = FrameGrabber(source_for(public.url + "/clip.mp4", 10, {"http_proxy": proxy.url}))
    try:
        assert grabber.frame_at(1000) is not None
    finally:
        grabber.close()
    with pytest.raises(ArgusError):
        FrameGrabber(source_for(f"{public.url}/redirect?to={inside.url}/clip.mp4", 10, {"http_proxy": proxy.url}))
    assert inside.hits == []


def test_no_proxy_cannot_route_decoders_around_the_proxy(servers, proxy, monkeypatch, tmp_path):
    # FFmpeg honours $no_proxy even when given http_proxy: the decoder processes must drop it
    from argus_core import Engine

    public, inside = servers
    monkeypatch.setenv("no_proxy", "127.0.0.2")
    with Engine(decoders=1, workers=1, ops=["pulp"], source_options={"http_proxy": proxy.url},
                options={"data_dir": str(tmp_path)}) as eng:
        body = {"data": {"uri": f"{public.url}/redirect?to={inside.url}/clip.mp4"}, "ops": [{"op": "pulp"}]}
        with pytest.raises(ArgusError) as err:
            eng.analyze(body)
    assert err.value.status == 424
    assert inside.hits == []


@pytest.mark.parametrize(
    "env,gone",
    [({"no_proxy": "10.0.0.1"}, True), ({"NO_PROXY": "x", "no_proxy": "y"}, True),
     ({"no_proxy": "10.0.0.1", "https_proxy": "http://corp:3128"}, False), ({}, True)],
)
def test_drop_no_proxy(monkeypatch, env, gone):
    from argus_http.net.egress import drop_no_proxy

    for var in ("no_proxy", "NO_PROXY", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(var, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    drop_no_proxy()
    import os

    assert (not os.environ.get("no_proxy") and not os.environ.get("NO_PROXY")) is gone


def _live_playlist(media: Path, name: str, segment_url: str) -> None:
    # no ENDLIST: read by Argus's own follower (argus_core/media/hls.py), not FFmpeg's demuxer
    (media / name).write_text("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n"
                              f"#EXTINF:2.0,\n{segment_url}\n")


def _live_frames(url: str, proxy_url: str | None) -> int:
    from argus_core.media.source import LiveSource

    options = {"http_proxy": proxy_url} if proxy_url else {}
    src = LiveSource(url, stall_s=1.5, open_timeout=5, options=options)
    n = 0
    try:
        with src.open() as video:
            for packet in video.container.demux(video.stream):
                n += len(video.stream.decode(packet))
    except (OSError, ArgusError, Exception):  # the playlist stops growing: the follower says so, as a stall
        pass
    return n


def test_live_hls_playlist_and_segments_go_through_the_proxy(servers, proxy, media):
    public, inside = servers
    _live_playlist(media, "live-good.m3u8", public.url + "/seg.ts")
    _live_playlist(media, "live-bad.m3u8", inside.url + "/seg.ts")
    # 50 frames in the segment; a live read is never flushed at its end, so the decoder keeps the last two
    assert _live_frames(public.url + "/live-good.m3u8", proxy.url) >= 48
    refused = proxy.refused
    assert _live_frames(public.url + "/live-bad.m3u8", proxy.url) == 0
    assert inside.hits == [] and proxy.refused > refused
    # without the proxy the follower would have fetched it: the hole the proxy closes
    _live_frames(public.url + "/live-bad.m3u8", None)
    assert inside.hits == ["/seg.ts"]
