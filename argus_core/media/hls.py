"""Live HLS, followed by Argus itself (issue 12: segment callback latency ≤ segment length + 1 s).

FFmpeg's HLS demuxer reloads a live playlist one segment duration after its last load, in 100-ms sleeps,
timed from when the load *finished*: each reload slides a little later against the encoder's cadence.
Measured on loopback (``bench/bench_live.py --only latency --protos hls``, 1-s segments): segment latency
1.27 s at the start, rising 12–17 ms a segment to 2.09 s after 58 segments (p95 2.06 s), until the phase
wraps. :class:`Follower` reads the playlist itself and feeds the segments' bytes, in order, to FFmpeg's
MPEG-TS demuxer as one stream (PyAV reads it as a file object):

- it joins at the live edge (the last listed segment; an ended playlist from its first), so the job clock
  starts at what is being published now, not three segments back;
- it reloads when the next segment is due — one segment duration after the newest one was first seen — and
  then every ``step`` (a quarter of the target duration, 0.1–1 s) until it is listed (:class:`Schedule`).
  RFC 8216 §6.3.4 asks a *viewer* to wait a full target duration after a change and half of one after no
  change; one analyser per stream polling a quarter-duration near the due time costs one or two extra
  playlist requests per segment, and it takes the reload wait from up to a segment down to ``step``;
- a segment's body streams to the demuxer as it arrives;
- a playlist that brings no new segment for three target durations (within ``stall_s``,
  :meth:`Follower.silence_s`) raises :class:`PlaylistStalled` (an
  :class:`OSError`); the live loop reconnects, and the new follower joins the live edge again. A segment
  that fails to download is skipped with a warning (a live stream does not end for one lost segment);
- a media-sequence reset (encoder restart) joins the new playlist at its edge; segments that expired before
  they were read (a consumer far behind) are skipped and logged.

What it does not read — encrypted segments (``EXT-X-KEY`` other than NONE), fMP4 (``EXT-X-MAP``), byte
ranges — it declares with :class:`Unsupported` on the first load, and :class:`~.source.LiveSource` uses
FFmpeg's demuxer for those playlists as before. A master playlist is resolved to one variant
(:func:`choose_variant`). Every request goes through the caller's ``fetch`` (the SSRF-checked opener,
through the egress proxy when there is one), so the guard sees the playlist and every segment.

The parsing and the reload schedule are pure (table tests in tests/test_hls.py); the follower is thin IO
around them.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Callable, Protocol
from urllib.parse import urljoin

log = logging.getLogger("argus.hls")


# -- the playlist ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Segment:
    seq: int  #: media sequence number
    url: str  #: absolute
    duration: float  #: seconds (EXTINF)
    discontinuity: bool = False  #: an EXT-X-DISCONTINUITY comes before it


@dataclass(frozen=True)
class MediaPlaylist:
    target_s: float  #: EXT-X-TARGETDURATION
    segments: tuple[Segment, ...]
    ended: bool  #: EXT-X-ENDLIST
    unsupported: str | None = None  #: a tag this follower does not read (see the module docstring)


@dataclass(frozen=True)
class Variant:
    url: str
    bandwidth: int
    height: int | None  #: from RESOLUTION, when given


def _attrs(text: str) -> dict[str, str]:
    """``KEY=value,KEY="quoted, value"`` → dict (RFC 8216 §4.2 attribute lists)."""
    out: dict[str, str] = {}
    key, val, quoted, i = "", "", False, 0
    reading_key = True
    while i < len(text):
        c = text[i]
        if reading_key:
            if c == "=":
                reading_key = False
            elif c != ",":
                key += c
        elif c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            out[key.strip().upper()] = val
            key, val, reading_key = "", "", True
        else:
            val += c
        i += 1
    if key.strip():
        out[key.strip().upper()] = val
    return out


def parse(text: str, base: str) -> MediaPlaylist | list[Variant]:
    """A playlist's text → a media playlist, or a master playlist's variants. ``base``: the playlist's URL
    (relative URIs resolve against it). Raises ValueError on a text that is not a playlist."""
    lines = [ln.strip() for ln in text.splitlines()]
    if not lines or not lines[0].startswith("#EXTM3U"):
        raise ValueError("not an HLS playlist (no #EXTM3U)")
    variants: list[Variant] = []
    segments: list[Segment] = []
    target, seq, ended = 0.0, 0, False
    unsupported: str | None = None
    duration: float | None = None
    disc = False
    stream_inf: dict[str, str] | None = None
    for ln in lines[1:]:
        if not ln:
            continue
        if ln.startswith("#"):
            tag, _, value = ln.partition(":")
            if tag == "#EXT-X-STREAM-INF":
                stream_inf = _attrs(value)
            elif tag == "#EXT-X-TARGETDURATION":
                target = float(value)
            elif tag == "#EXT-X-MEDIA-SEQUENCE":
                seq = int(value)
            elif tag == "#EXTINF":
                duration = float(value.split(",", 1)[0])
            elif tag == "#EXT-X-DISCONTINUITY":
                disc = True
            elif tag == "#EXT-X-ENDLIST":
                ended = True
            elif tag == "#EXT-X-KEY" and _attrs(value).get("METHOD", "NONE").upper() != "NONE":
                unsupported = unsupported or "EXT-X-KEY"
            elif tag in ("#EXT-X-MAP", "#EXT-X-BYTERANGE"):
                unsupported = unsupported or tag[1:]
            continue
        if stream_inf is not None:
            res = stream_inf.get("RESOLUTION", "")
            height = int(res.lower().split("x")[1]) if "x" in res.lower() else None
            variants.append(Variant(urljoin(base, ln), int(stream_inf.get("BANDWIDTH", "0") or 0), height))
            stream_inf = None
            continue
        segments.append(Segment(seq, urljoin(base, ln), duration if duration is not None else target, disc))
        seq, duration, disc = seq + 1, None, False
    if variants:
        return variants
    return MediaPlaylist(target or max((s.duration for s in segments), default=0.0), tuple(segments), ended,
                         unsupported)


def choose_variant(variants: list[Variant], max_height: int = 720) -> Variant:
    """The variant to analyse: the tallest at or below ``max_height`` (the models see ≤ 640 px; a 1080p
    variant costs decode time for nothing), else the shortest; the highest bandwidth among equals and when
    no variant states its resolution."""
    sized = [v for v in variants if v.height is not None]
    if not sized:
        return max(variants, key=lambda v: v.bandwidth)
    below = [v for v in sized if v.height <= max_height]  # type: ignore[operator]
    if below:
        return max(below, key=lambda v: (v.height, v.bandwidth))
    return min(sized, key=lambda v: (v.height, -v.bandwidth))


def join_at(pl: MediaPlaylist) -> int:
    """The media sequence number to start at: the live edge (the last listed segment) of a live playlist,
    the first segment of an ended one."""
    if not pl.segments:
        return 0
    return pl.segments[0].seq if pl.ended else pl.segments[-1].seq


# -- when to reload -------------------------------------------------------------------------------------
class Schedule:
    """When the next playlist load is due (pure; the follower passes the time).

    ``step = clamp(target / 4, 0.1 s, 1 s)``. After a load that listed a new segment, the next is due one
    newest-segment duration after that segment was first seen, taken as the middle of the last ``step``
    (it appeared between the previous load and this one); after a load with nothing new, ``step`` later."""

    def __init__(self, min_step: float = 0.1, max_step: float = 1.0) -> None:
        self.min_step, self.max_step = min_step, max_step

    def step(self, target_s: float) -> float:
        return min(self.max_step, max(self.min_step, target_s / 4))

    def after(self, load_started: float, target_s: float, newest_s: float | None) -> float:
        """The time of the next load, for a load that began at ``load_started``; ``newest_s``: the duration
        of the newest segment it brought (None: it brought none)."""
        step = self.step(target_s)
        if newest_s is None:
            return load_started + step
        return load_started + max(step, newest_s - step / 2)


# -- the follower ---------------------------------------------------------------------------------------
class Body(Protocol):
    def read(self, n: int = -1) -> bytes: ...

    def close(self) -> None: ...


#: ``fetch(url)`` → an open body to read (the SSRF-checked opener); raises OSError on failure
Fetch = Callable[[str], Body]


class Unsupported(Exception):
    """The playlist uses something the follower does not read: use FFmpeg's HLS demuxer for it."""


class PlaylistStalled(TimeoutError):
    """The live playlist brought no new segment for longer than the stall bound."""


class Follower:
    """A live HLS stream as one MPEG-TS byte stream (a read-only file object for PyAV; see the module
    docstring). :meth:`start` loads the playlist (resolving a master playlist) and raises
    :class:`Unsupported`, OSError or ValueError there; :meth:`read` blocks until bytes come, returns
    ``b""`` at the end of an ended playlist or once ``stop()``, and raises :class:`PlaylistStalled`."""

    def __init__(self, url: str, fetch: Fetch, *, stall_s: float, stop: Callable[[], bool] = lambda: False,
                 max_height: int = 720, schedule: Schedule | None = None,
                 now: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep) -> None:
        self.url, self.fetch, self.stall_s, self.stop = url, fetch, stall_s, stop
        self.max_height = max_height
        self.schedule = schedule or Schedule()
        self._now, self._sleep = now, sleep
        self._queue: deque[Segment] = deque()
        self._body: Body | None = None
        self._last_seq: int | None = None  # the last segment queued
        self._target = 0.0
        self._ended = False
        self._due = 0.0
        self._progress = now()  # the last time the stream moved: bytes read or a segment listed
        self.segments_read = 0
        self.skipped = 0

    def silence_s(self) -> float:
        """How long the stream may bring nothing before it counts as stalled: three target durations (2 s at
        least), within the caller's ``stall_s``. A segment is listed every target duration or sooner (RFC 8216
        §4.3.3.1: EXTINF ≤ TARGETDURATION), so three without one is a dead encoder; with 1-s segments that is
        seen in 3 s, where the caller's bound for HLS (10 s, for segments seconds long) would take 10."""
        if self._target <= 0:
            return self.stall_s
        return min(self.stall_s, max(2.0, 3.0 * self._target))

    # loading ------------------------------------------------------------------------------------------
    def _load(self, url: str) -> MediaPlaylist | list[Variant]:
        body = self.fetch(url)
        try:
            text = body.read().decode("utf-8", "replace")
        finally:
            body.close()
        return parse(text, getattr(body, "url", None) or url)

    def start(self) -> "Follower":
        pl = self._load(self.url)
        if isinstance(pl, list):
            variant = choose_variant(pl, self.max_height)
            log.info("HLS master playlist: following the %s variant (%d bit/s)",
                     f"{variant.height}p" if variant.height else "unsized", variant.bandwidth)
            self.url = variant.url
            pl = self._load(self.url)
            if isinstance(pl, list):
                raise ValueError("a master playlist names another master playlist")
        if pl.unsupported:
            raise Unsupported(pl.unsupported)
        started = self._now()
        first = join_at(pl)
        self._take(pl, first - 1)
        self._due = self.schedule.after(started, pl.target_s, pl.segments[-1].duration if pl.segments else None)
        return self

    def _take(self, pl: MediaPlaylist, after: int) -> Segment | None:
        """Queue the segments of ``pl`` after sequence number ``after``; the newest one queued, if any."""
        self._target, self._ended = pl.target_s, pl.ended
        new = [s for s in pl.segments if s.seq > after]
        self._queue.extend(new)
        if new:
            self._last_seq = new[-1].seq
            self._progress = self._now()
        return new[-1] if new else None

    def _reload(self) -> None:
        started = self._now()
        pl = self._load(self.url)
        if isinstance(pl, list):
            raise ValueError("the media playlist became a master playlist")
        if pl.unsupported:
            raise Unsupported(pl.unsupported)
        last = self._last_seq if self._last_seq is not None else -1
        if pl.segments and pl.segments[-1].seq < last:
            # the sequence went back: the encoder restarted its playlist; join it at its edge
            log.warning("HLS media sequence reset (%d → %d): joining the new playlist at its edge",
                        last, pl.segments[-1].seq)
            last = join_at(pl) - 1
        elif pl.segments and pl.segments[0].seq > last + 1 and self._last_seq is not None:
            self.skipped += pl.segments[0].seq - last - 1
            log.warning("HLS: %d segment(s) expired before they were read", pl.segments[0].seq - last - 1)
        newest = self._take(pl, last)
        self._due = self.schedule.after(started, pl.target_s, newest.duration if newest else None)

    def _next_segment(self) -> Segment | None:
        while not self._queue:
            if self._ended:
                return None
            while True:  # wait for the due time in slices, so that stop() and the stall bound are seen
                if self.stop():
                    return None
                now = self._now()
                if now - self._progress > self.silence_s():
                    raise PlaylistStalled(f"no new HLS segment for {now - self._progress:.1f} s")
                if now >= self._due:
                    break
                self._sleep(min(0.05, self._due - now))
            try:
                self._reload()
            except (OSError, ValueError) as exc:  # one failed reload is retried at the next step
                log.warning("HLS playlist reload failed: %s", exc)
                self._due = self._now() + self.schedule.step(self._target)
        return self._queue.popleft()

    # the file object ------------------------------------------------------------------------------------
    def read(self, n: int = -1) -> bytes:
        while True:
            if self._body is not None:
                try:
                    data = self._body.read(n if n and n > 0 else 65536)
                except OSError as exc:
                    log.warning("HLS segment cut short: %s", exc)
                    data = b""
                if data:
                    self._progress = self._now()
                    return data
                self._body.close()
                self._body = None
            if self.stop():
                return b""
            seg = self._next_segment()
            if seg is None:
                return b""
            try:
                self._body = self.fetch(seg.url)
                self.segments_read += 1
            except OSError as exc:
                self.skipped += 1
                log.warning("HLS segment %d skipped: %s", seg.seq, exc)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None
