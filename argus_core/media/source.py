"""Sources: where frames come from. A :class:`Source` opens to an :class:`OpenedVideo` (PyAV container +
its first video stream + what is known about it), and says whether it is live (no known end).

:class:`FileSource`: local files and http(s) URLs, finite. :class:`LiveSource` (issue 12): RTMP, RTSP (TCP),
SRT, live HLS and HTTP(S) MPEG-TS/FLV streams, ``live = True`` and ``duration = None``; which one a URI is,
:func:`source_for` alone decides (:func:`is_live_uri`). Everything that opens video — the decoder processes, the frames-only task, saving cuts — opens it
here, so the error mapping (CONTRACT §2) and the FFmpeg options (timeouts, the SSRF-checking proxy, the
protocol whitelist) are the same everywhere.
"""

from __future__ import annotations

import errno
import functools
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Protocol
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import av
import av.error

from ..errors import ArgusError, CannotOpen, InvalidRequest, OutOfMemory, VideoNotFound
from . import hls, relay
from .nested import MAX_DOWNLOAD_OPTION, MEDIA_ROOT_OPTION, NestedOpener, Refused, flat_formats, hls_formats, is_hls, protocols_for

log = logging.getLogger("argus.source")

# FFmpeg errno values meaning "the source could not be reached" (→ 424).
_UNREACHABLE = {
    errno.ENOENT, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH,
    errno.ECONNRESET, errno.EACCES, errno.EPERM,
}

#: the most an http(s) source may lead FFmpeg to open, kept for callers that name it; each source now gets the
#: narrowest list for its own scheme (:func:`.nested.protocols_for`), and HLS resources pass NestedOpener
HTTP_PROTOCOLS = "http,https,tcp,tls,httpproxy"


def local_path(uri: str) -> str | None:
    """The filesystem path of a local URI (bare path or ``file://``), else None."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:
        return unquote(parts.path) if parts.scheme == "file" else uri
    return None


def map_av_error(exc: BaseException) -> ArgusError:
    """FFmpeg/PyAV exception → the contract's error (§2)."""
    if isinstance(exc, ArgusError):
        return exc
    if isinstance(exc, (MemoryError, av.error.MemoryError)):
        return OutOfMemory(detail=str(exc))
    if isinstance(exc, (av.error.HTTPError, av.error.HTTPClientError, av.error.FileNotFoundError,
                        av.error.ExitError)):
        return VideoNotFound(detail=str(exc))
    code = getattr(exc, "errno", None)
    if code in _UNREACHABLE or isinstance(exc, (TimeoutError, ConnectionError)):
        return VideoNotFound(detail=str(exc))
    return CannotOpen(detail=f"{type(exc).__name__}: {exc}")


def duration_of(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """The video's duration in seconds from the stream or the container header (None if unknown)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1e6
    return None


def first_video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The container's first video stream; the container is closed and a documented error raised if none."""
    try:
        if not container.streams.video:
            raise CannotOpen(detail="no video stream")
        stream = container.streams.video[0]
        if not stream.codec_context or stream.codec_context.width <= 0:
            raise CannotOpen(detail="video stream has no size")
    except BaseException:
        container.close()
        raise
    return stream


def open_video(
    uri: str, timeout: float = 30.0, options: dict[str, str] | None = None,
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a source and its first video stream, mapping failures to the documented errors.

    ``options``: extra FFmpeg options for network sources (e.g. ``http_proxy``)."""
    path = local_path(uri)
    if path is not None:
        if not os.path.exists(path):
            raise VideoNotFound(detail=f"no such file: {os.path.abspath(path)}")
        if os.path.isdir(path) or os.path.getsize(path) == 0:
            raise CannotOpen(detail=f"empty or not a file: {path}")
    target = path if path is not None else uri
    options = dict(options or {})
    media_root = options.pop(MEDIA_ROOT_OPTION, None) or None
    max_bytes = int(options.pop(MAX_DOWNLOAD_OPTION, 0) or 0)
    proxy = options.get("http_proxy") or None
    if path is not None:
        options = {}
    else:
        options = {"reconnect": "1", "rw_timeout": str(int(timeout * 1e6)), **options}
    extra: dict = {}
    if is_hls(uri):
        # every playlist, segment and key passes NestedOpener's guard (issue 10)
        extra["io_open"] = NestedOpener(uri, timeout, proxy, media_root, max_bytes)
        options["format_whitelist"] = hls_formats()
    else:
        options["protocol_whitelist"] = protocols_for(uri, proxied=proxy is not None)
        options["format_whitelist"] = flat_formats()
    try:
        container = av.open(target, mode="r", timeout=(timeout, timeout), options=options, **extra)
    except ArgusError:
        raise
    except Refused as exc:
        raise VideoNotFound(detail=f"refused: {exc}") from None
    except Exception as exc:
        raise map_av_error(exc) from None
    return container, first_video_stream(container)


@dataclass
class OpenedVideo:
    """An open source: the container, its first video stream, and what is known before decoding."""

    container: av.container.InputContainer
    stream: av.video.stream.VideoStream
    duration: float | None  #: seconds; None for live sources and files that do not say
    #: what feeds the container its bytes when Argus reads the source itself (a live HLS :class:`.hls.Follower`)
    feed: Any = None

    @property
    def width(self) -> int:
        return self.stream.codec_context.width

    @property
    def height(self) -> int:
        return self.stream.codec_context.height

    def close(self) -> None:
        try:
            self.container.close()
        finally:
            if self.feed is not None:
                self.feed.close()

    def __enter__(self) -> "OpenedVideo":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Source(Protocol):
    """Where frames come from (CONTRACT §1 ``data.uri``). ``live``: no known end (duration None)."""

    uri: str
    live: ClassVar[bool]

    def open(self) -> OpenedVideo: ...

    def nothing_decodable(self) -> bool: ...

    def openings(self) -> int:
        """How many openings at once this source serves well (a local file: several; a connection: one)."""
        ...


def load_index(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> None:
    """Have the whole keyframe index read at open.

    Matroska and WebM read their Cues (the index) only at the first seek, so right after opening the index
    lists the first keyframe alone, and the sampler, which plans its seeks from it
    (:func:`~.clock.keyframe_times`), never seeks. Sampling a 31-s 720p MKV every 5 s decoded the whole file
    (1.05 s of CPU, the same pictures in MP4 0.20 s). One seek to the start reads them (0.1 ms locally; over
    HTTP one range request for the Cues, as any player makes)."""
    if "matroska" not in (container.format.name or "") or len(stream.index_entries) > 1:
        return
    try:
        container.seek(stream.start_time or 0, stream=stream, backward=True)
    except av.error.FFmpegError:   # not seekable: decoding on from the start is all there is
        pass


@dataclass
class FileSource:
    """A finite video: a local file or an http(s) URL. ``options``: extra FFmpeg options for network
    sources (the service sets ``http_proxy`` to its SSRF-checking proxy)."""

    uri: str
    timeout: float = 30.0
    options: dict[str, str] = field(default_factory=dict)
    live: ClassVar[bool] = False

    def open(self) -> OpenedVideo:
        container, stream = open_video(self.uri, self.timeout, self.options or None)
        load_index(container, stream)
        return OpenedVideo(container, stream, duration_of(container, stream))

    def openings(self) -> int:
        """A local file serves several readers at once (:mod:`.chunks`); a URL gets one connection."""
        return 4 if local_path(self.uri) is not None and not is_hls(self.uri) else 1

    def nothing_decodable(self) -> bool:
        """True when not a single frame of the video decodes (a window past the end is not an error)."""
        try:
            video = self.open()
        except ArgusError:
            return True
        try:
            for _frame in video.container.decode(video.stream):
                return False
            return True
        except av.error.FFmpegError:
            return True
        finally:
            video.close()


#: schemes that are always live streams
LIVE_SCHEMES = frozenset({"rtmp", "rtmps", "rtsp", "rtsps", "srt"})


def is_live_uri(uri: str, live: bool = False) -> bool:
    """Whether a URI is a live stream. The rule (issue 12, README "Live streams"): ``rtmp``/``rtsp``/``srt``
    URIs always are; an ``http(s)`` URI (HLS ``.m3u8``, MPEG-TS or FLV over HTTP) is live exactly when the
    request says so with ``params.live`` (``live=True``) — never guessed from a probe, so a VOD playlist or a
    file served without a length stays a finite video unless the caller asks otherwise."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in LIVE_SCHEMES:
        return True
    return live and scheme in ("http", "https")


def redact(uri: str) -> str:
    """A URI fit for logs: no user info, no query (stream keys and tokens live there)."""
    p = urlsplit(uri)
    host = p.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    port = f":{p.port}" if p.port else ""
    return f"{p.scheme}://{host}{port}{p.path}"


# -- dialling a checked address (issue 12 "SSRF") ----------------------------------------------------------
#: the fragment marker that carries a pinned URI's original host name and every checked address. FFmpeg never
#: sees it (:meth:`LiveSource.open` strips it); it rides in the URI so that every consumer of the URI — the
#: decoder, the cut saver, the report's thumbnails — dials the same checked addresses without new plumbing.
PIN_MARK = "#argus_pin="
#: schemes whose host FFmpeg resolves itself (no proxy can stand in front of them): these are pinned
PINNED_SCHEMES = frozenset({"rtmp", "rtsp", "srt"})


def _netloc(parts, host: str) -> str:
    """``parts``' netloc with its host replaced (user info and port kept; IPv6 in brackets)."""
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
    try:
        port = parts.port
    except ValueError:
        port = None
    if ":" in host:  # IPv6 literal; a zone id's "%" is written "%25" (RFC 6874)
        host = "[" + host.replace("%", "%25") + "]"
    return (userinfo + "@" if userinfo else "") + host + (f":{port}" if port is not None else "")


def pin_uri(uri: str, addresses: list[str]) -> str:
    """``uri`` to be dialled at ``addresses`` (already checked, in order): the host replaced by the first one,
    the original host and every address kept after :data:`PIN_MARK`. A URI whose host already is an IP literal
    comes back as it is. Port, path, query, user info and any fragment of the original are kept."""
    if not addresses:
        raise ValueError("no address to pin to")
    base, _, _old = uri.partition(PIN_MARK)  # a URI pinned twice keeps one marker
    parts = urlsplit(base)
    host = parts.hostname or ""
    if host.strip("[]") == addresses[0].split("%")[0] and len(addresses) == 1:
        return base
    head = urlunsplit((parts.scheme, _netloc(parts, addresses[0]), parts.path, parts.query, ""))
    # the original fragment (FFmpeg reads "#…" as part of an RTMP playpath) stays before the marker
    tail = base[len(urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))):]
    return head + tail + PIN_MARK + urlencode({"host": host, "addr": addresses}, doseq=True)


@dataclass(frozen=True)
class Dial:
    """Where to connect for a URI: ``urls`` to try in order (each with the host replaced by one checked
    address), the original ``host`` (None: the URI was not pinned)."""

    urls: tuple[str, ...]
    host: str | None = None


def dial_of(uri: str) -> Dial:
    """The URLs FFmpeg is given for ``uri`` (see :func:`pin_uri`)."""
    base, mark, encoded = uri.partition(PIN_MARK)
    if not mark or urlsplit(base).scheme.lower() not in PINNED_SCHEMES:
        return Dial((uri,))  # only rtmp/rtsp/srt are pinned: on any other URI the text is not ours
    fields = parse_qs(encoded)
    addrs = fields.get("addr") or []
    host = (fields.get("host") or [None])[0]
    parts = urlsplit(base)
    prefix = urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, ""))
    tail = base[len(prefix):]
    urls = tuple(urlunsplit((parts.scheme, _netloc(parts, a), parts.path, parts.query, "")) + tail
                 for a in addrs) or (base,)
    return Dial(urls, host)


def rtmp_tcurl(url: str, host: str) -> str:
    """The ``tcUrl`` FFmpeg would send for ``url`` had it been given the host name ``host``: RTMP servers
    that host several sites (vhosts) pick one by the tcUrl's host, which a pinned URL would otherwise turn
    into an IP literal. The app is split off the path the way FFmpeg's RTMP client does by default: the
    first path component, or the first two when a third (the playpath) follows without a ":" before it."""
    parts = urlsplit(url)
    comps = parts.path.lstrip("/").split("/")
    if len(comps) < 2:
        app = ""
    elif len(comps) == 2 or ":" in comps[1]:
        app = comps[0]
    else:
        app = comps[0] + "/" + comps[1]
    netloc = _netloc(parts._replace(netloc=parts.netloc.rpartition("@")[2]), host)
    return f"{parts.scheme}://{netloc}/{app}"


@dataclass
class LiveSource:
    """A live stream (no end, ``duration`` None). ``stall_s``: a read blocking longer than this (PyAV's read
    timeout, a monotonic deadline checked by FFmpeg's interrupt callback) or no video packet for this long
    ends the connection; :func:`argus_core.media.live.live_samples` then reconnects. ``open_timeout``
    bounds one connect attempt. ``options``: extra FFmpeg options (the service's proxy for http(s))."""

    uri: str
    stall_s: float = 5.0
    open_timeout: float = 10.0
    options: dict[str, str] = field(default_factory=dict)
    live: ClassVar[bool] = True

    #: the read deadline sits this far inside ``stall_s`` so that a stall is *reported* within the bound
    #: (issue 12: "stall detected within max(5 s, 2 × interval)"; measured at the bound itself, 4.99–5.05 s,
    #: by bench/bench_live.py before this margin)
    DETECT_MARGIN_S: ClassVar[float] = 0.5

    @property
    def deadline_s(self) -> float:
        """How long a read may block, or video be missing, before the connection counts as stalled."""
        return max(0.5, self.stall_s - self.DETECT_MARGIN_S)

    @property
    def read_timeout_s(self) -> float:
        """PyAV's read timeout for this source: :attr:`deadline_s`, halved for RTSP, whose demuxer outlives
        the first interrupt (a SIGSTOPped publisher was detected after 9.06 s with a 4.5-s read timeout, 5.03 s
        with 2.5 s — twice the timeout each time; bench/bench_live.py, tests/live_publishers.py's push)."""
        if urlsplit(self.uri).scheme.lower() in ("rtsp", "rtsps"):
            return self.deadline_s / 2
        return self.deadline_s

    @property
    def redacted(self) -> str:
        dial = dial_of(self.uri)
        return redact(dial.urls[0]) + (f" ({dial.host})" if dial.host else "")

    @property
    def is_hls(self) -> bool:
        return urlsplit(self.uri).path.lower().endswith(".m3u8")

    def ffmpeg_options(self) -> dict[str, str]:
        """FFmpeg options per protocol: low start-up latency, our own reconnects (FFmpeg's are off)."""
        scheme = urlsplit(self.uri).scheme.lower()
        us = str(int(self.deadline_s * 1e6))
        # no ``fflags nobuffer``: with it FFmpeg drops the packets read while probing the streams, which on a
        # live source are the first keyframe and its GOP — nothing decodes until the next keyframe, and an HLS
        # window's first segment (the one before an EXT-X-DISCONTINUITY, say) is lost whole, so the jump
        # after it was never seen (issue 12). Probing reads those packets either way; keeping them costs
        # no latency, only the memory of one probe's worth of packets.
        opts = {"analyzeduration": "1000000", "probesize": "1000000"}
        if scheme in ("rtmp", "rtmps"):
            opts["rtmp_live"] = "live"
        elif scheme in ("rtsp", "rtsps"):
            opts.update(rtsp_transport="tcp", timeout=us)
            if "listen" in self.options.get("rtsp_flags", ""):
                # the reader as the server (a camera or encoder pushes to us). Its wait for the publisher must
                # be set: FFmpeg 8's default (-1 s) reaches the TCP layer as -1000 and every listen fails with
                # ERANGE ("Unable to open RTSP for listening"); PyAV's open timeout still bounds the wait
                opts["listen_timeout"] = str(max(1, int(math.ceil(self.open_timeout))))
        elif scheme == "srt":
            opts["rw_timeout"] = us
        elif scheme in ("http", "https"):
            opts.update(rw_timeout=us, reconnect="0", protocol_whitelist=HTTP_PROTOCOLS)
            if self.is_hls:
                # give up on a playlist that stopped growing after a few reloads (FFmpeg's default, 1000
                # reloads, is what makes a dead HLS encoder hang for minutes). live_start_index stays at
                # FFmpeg's -3: measured here, -1 decoded no frame at all from a 1 s-segment playlist.
                opts.update(m3u8_hold_counters="3", max_reload="3")
        opts.update(self.options)
        return opts

    def attempts(self) -> list[tuple[str, dict[str, str]]]:
        """What one connect tries, in order: (URL, FFmpeg options). One per checked address of a pinned URI
        (the host name never reaches FFmpeg; RTMP's tcUrl still names it), else the URI itself."""
        dial = dial_of(self.uri)
        out = []
        for url in dial.urls:
            options = self.ffmpeg_options()
            if dial.host and urlsplit(url).scheme.lower() == "rtmp" and "rtmp_tcurl" not in options:
                options["rtmp_tcurl"] = rtmp_tcurl(url, dial.host)
            out.append((url, options))
        return out

    def open(self, stop: Callable[[], bool] | None = None) -> OpenedVideo:
        """Connect. A pinned URI (:func:`pin_uri`) is dialled at its checked addresses only, one after the
        other until one answers — FFmpeg never resolves the host name again (issue 12 "SSRF"). A live HLS
        playlist is followed by :class:`.hls.Follower` (``stop`` ends its waits) unless it uses what the
        follower does not read. ``stop``: when the caller wants out (a follower's wait for the next segment)."""
        scheme = urlsplit(self.uri).scheme.lower()
        if self.is_hls and scheme in ("http", "https"):
            video = self._open_followed(stop or (lambda: False))
            if video is not None:
                return video
        if scheme in OPTIONAL_SCHEMES and not protocol_available(scheme):
            return self._open_relayed(stop or (lambda: False))
        error: ArgusError | None = None
        for url, options in self.attempts():
            try:
                container = av.open(url, mode="r", timeout=(self.open_timeout, self.read_timeout_s), options=options)
                break
            except ArgusError:
                raise
            except Exception as exc:
                error = map_av_error(exc)
        else:
            assert error is not None
            raise error from None
        return self._video(container)

    @staticmethod
    def _video(container: av.container.InputContainer, feed: Any = None) -> OpenedVideo:
        try:
            stream = first_video_stream(container)
        except BaseException:
            if feed is not None:
                feed.close()
            raise
        rate = stream.average_rate or stream.guessed_rate
        if rate and hasattr(feed, "frame_s"):
            feed.frame_s = 1.0 / float(rate)  # a relay's silence bound follows the stream's frame rate
        # no frame threads: each would hold a frame back (latency) and a live decoder runs per stream
        stream.thread_type = "SLICE"
        return OpenedVideo(container, stream, None, feed)

    def _open_relayed(self, stop: Callable[[], bool]) -> OpenedVideo:
        """Open through the ``ffmpeg`` CLI (:class:`.relay.CliRelay`): a protocol PyAV's FFmpeg lacks."""
        error: ArgusError | None = None
        for url, _options in self.attempts():
            feed = relay.CliRelay(url, stall_s=max(0.5, self.deadline_s - relay.DELAY_S),
                                  open_timeout=self.open_timeout, stop=stop)
            try:
                feed.start()
            except OSError as exc:
                error = VideoNotFound(detail=f"{self.redacted}: {exc}")
                continue
            return self._open_feed(feed)
        assert error is not None
        raise error

    def _open_feed(self, feed: Any) -> OpenedVideo:
        """PyAV's MPEG-TS demuxer over a byte feed of ours (a follower or a relay), which it then owns."""
        opts = {k: v for k, v in self.ffmpeg_options().items() if k in ("analyzeduration", "probesize")}
        try:
            container = av.open(feed, mode="r", format="mpegts", options=opts,
                                timeout=(self.open_timeout, self.deadline_s))
        except BaseException as exc:
            feed.close()
            if isinstance(exc, Exception):
                raise map_av_error(exc) from None
            raise
        return self._video(container, feed)

    def _open_followed(self, stop: Callable[[], bool]) -> OpenedVideo | None:
        """Open a live HLS source through our own playlist follower (None: leave it to FFmpeg's demuxer)."""
        opener = NestedOpener(self.uri, self.deadline_s, self.options.get("http_proxy") or None, None)
        follower = hls.Follower(self.uri, lambda url: opener(url, 0, None), stall_s=self.deadline_s, stop=stop)
        try:
            follower.start()
        except hls.Unsupported as exc:
            log.info("live HLS %s uses %s: read by FFmpeg's HLS demuxer", self.redacted, exc)
            return None
        except Refused as exc:
            raise VideoNotFound(detail=f"refused: {exc}") from None
        except OSError as exc:
            raise VideoNotFound(detail=f"HLS playlist: {exc}") from None
        except ValueError as exc:
            raise CannotOpen(detail=f"HLS playlist: {exc}") from None
        return self._open_feed(follower)

    def nothing_decodable(self) -> bool:
        """A live source is never judged undecodable by one look: it reconnects instead."""
        return False

    def openings(self) -> int:
        """One connection to a stream."""
        return 1


#: schemes PyAV's own FFmpeg may lack (the PyPI wheels of PyAV 18.1, FFmpeg 8.1, have no libsrt)
OPTIONAL_SCHEMES = frozenset({"srt"})


@functools.cache
def protocol_available(scheme: str) -> bool:
    """Whether PyAV's FFmpeg has the protocol. PyAV lists no protocols, but FFmpeg looks one up before it
    connects, so a missing one fails at once; a present one tries a caller to a closed loopback port and
    gives up after 100 ms. Asked once per process."""
    try:
        av.open(f"{scheme}://127.0.0.1:9?mode=caller&connect_timeout=100", timeout=0.5).close()
    except av.error.ProtocolNotFoundError:
        return False
    except Exception:  # refused, timed out: the protocol is there
        pass
    return True


def require_protocol(uri: str) -> None:
    """400 ``invalid parameters`` for a scheme neither PyAV's FFmpeg nor the ``ffmpeg`` CLI can read (the
    relay, :mod:`.relay`), instead of a live job that retries "Protocol not found" until its timeout
    (issue 12: ``srt://`` with the PyPI PyAV wheels and no libsrt ``ffmpeg`` on the box)."""
    scheme = urlsplit(uri).scheme.lower()
    if scheme in OPTIONAL_SCHEMES and not protocol_available(scheme) and not relay.cli_has_protocol(scheme):
        raise InvalidRequest(detail=f"{scheme}:// is not supported here: PyAV's FFmpeg has no {scheme} protocol "
                                    f"and no ffmpeg executable with {scheme} was found to relay it (install "
                                    f"Debian's ffmpeg, or set ARGUS_FFMPEG to one built with lib{scheme})",
                             public=True)


def source_for(uri: str, timeout: float = 30.0, options: dict[str, str] | None = None, *,
               live: bool = False, stall_s: float = 5.0) -> Source:
    """The source kind for a URI — the one place that decides (:func:`is_live_uri`). ``live``: the request
    carried ``params.live``; ``stall_s``: the live stall bound."""
    if is_live_uri(uri, live):
        return LiveSource(uri, stall_s, min(timeout, max(stall_s, 10.0)), dict(options or {}))
    return FileSource(uri, timeout, dict(options or {}))
