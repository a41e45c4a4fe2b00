"""Frame sampling (CONTRACT §2) with PyAV: which frames, at which offsets, decoded the cheapest way.

- mode 0: one frame every ``interval`` s on the grid ``k·interval`` (offset exactly ``round(k·interval·1000)``
  ms, the frame shown at that time), restricted to the ``[ss, ss+t)`` window. Per target the sampler either
  decodes forward or seeks: it seeks only when a keyframe lies between the current position and the
  target (known from the container's index, else learned from the keyframes seen) more than a dozen
  frames ahead, so sparse sampling of short GOPs seeks and dense sampling / long GOPs decode forward.
  Decoding forward, FFmpeg drops the non-reference frames no target shows (:func:`decode_needed`).
- mode 1: keyframes only, by feeding only keyframe packets to the decoder (``skip_frame=NONKEY`` as
  well; VP9 ignores the latter). Offsets come from each frame's pts. When no keyframe comes for
  ``max_gap`` s, exact frames are taken at that spacing so long GOPs are never unsampled.

The sampler only yields ``(offset_ms, av.VideoFrame)``; conversion into ring slots is
:class:`Converter`'s job, and the decoder process (:mod:`argus_core.procs`) glues them together.
"""

from __future__ import annotations

import bisect
import errno
import itertools
import logging
import math
import os
from collections import deque
from fractions import Fraction
from typing import Callable, Iterator, Sequence
from urllib.parse import unquote, urlsplit

import av
import av.error
import numpy as np
from av.video.reformatter import Interpolation, VideoReformatter

from .errors import ArgusError, CannotOpen, OutOfMemory, VideoNotFound
from .frames import FrameSpec
from .request import Sampling

log = logging.getLogger("argus.sampler")

StopCheck = Callable[[], bool]
#: seek forward only past this many frames (cheaper to decode through fewer)
SEEK_MIN_FRAMES = 12
#: packets decode_needed holds at most while it cannot yet tell whether their frame is shown
HOLD_LIMIT = 64

# FFmpeg errno values meaning "the source could not be reached" (→ 424).
_UNREACHABLE = {
    errno.ENOENT, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH,
    errno.ECONNRESET, errno.EACCES, errno.EPERM,
}


# -- opening ----------------------------------------------------------------------------------------
def local_path(uri: str) -> str | None:
    """The filesystem path of a local URI (bare path or ``file://``), else None."""
    parts = urlsplit(uri)
    if parts.scheme in ("", "file") or len(parts.scheme) == 1:
        return unquote(parts.path) if parts.scheme == "file" else uri
    return None


#: what an http(s) source may lead FFmpeg to open (HLS playlists name further URLs): never a local file
HTTP_PROTOCOLS = "http,https,tcp,tls,crypto,httpproxy,data"


def open_video(
    uri: str, timeout: float = 30.0, options: dict[str, str] | None = None,
) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
    """Open a source and its first video stream, mapping failures to the documented errors.

    ``options``: extra FFmpeg options for network sources (e.g. ``http_proxy``)."""
    path = local_path(uri)
    if path is not None:
        if not os.path.exists(path):
            raise VideoNotFound(detail=f"no such file: {path}")
        if os.path.isdir(path) or os.path.getsize(path) == 0:
            raise CannotOpen(detail=f"empty or not a file: {path}")
    target = path if path is not None else uri
    options = {} if path is not None else {"reconnect": "1", "rw_timeout": str(int(timeout * 1e6)),
                                           **(options or {})}
    if path is None and urlsplit(uri).scheme.lower() in ("http", "https"):
        options.setdefault("protocol_whitelist", HTTP_PROTOCOLS)
    try:
        container = av.open(target, mode="r", timeout=(timeout, timeout), options=options)
    except ArgusError:
        raise
    except Exception as exc:
        raise map_av_error(exc) from None
    try:
        if not container.streams.video:
            raise CannotOpen(detail="no video stream")
        stream = container.streams.video[0]
        if not stream.codec_context or stream.codec_context.width <= 0:
            raise CannotOpen(detail="video stream has no size")
    except BaseException:
        container.close()
        raise
    return container, stream


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


# -- timing helpers ---------------------------------------------------------------------------------
class Clock:
    """Stream timestamps → seconds from the start of the video."""

    def __init__(self, stream: av.video.stream.VideoStream) -> None:
        self.tb = stream.time_base or Fraction(1, 90000)
        self._tb_float = float(self.tb)
        self.start = stream.start_time if stream.start_time is not None else 0
        rate = stream.average_rate or stream.guessed_rate or 25
        self.frame_dur = 1.0 / float(rate) if rate else 0.04
        self._last = -self.frame_dur

    def seconds(self, frame: av.VideoFrame) -> float:
        if frame.pts is None:
            # no timestamp: assume one frame after the previous one
            self._last += self.frame_dur
            return self._last
        t = float((frame.pts - self.start) * self.tb)
        self._last = t
        return t

    def of(self, ts: int) -> float:
        """A stream timestamp → seconds (float arithmetic: called for every packet)."""
        return (ts - self.start) * self._tb_float

    def ts(self, seconds: float) -> int:
        """Seconds → a stream timestamp (for seeking)."""
        return int(self.start + seconds / self.tb)


def duration_of(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1e6
    return None


def keyframe_times(stream: av.video.stream.VideoStream, clock: Clock) -> list[float]:
    """Keyframe times from the container's index (empty when the format keeps none, e.g. MPEG-TS)."""
    try:
        entries = stream.index_entries
        return sorted(float((e.timestamp - clock.start) * clock.tb) for e in entries if e.is_keyframe)
    except Exception:  # pragma: no cover - formats without an index
        return []


def ms(seconds: float) -> int:
    return int(round(seconds * 1000))


# -- mode 0 -----------------------------------------------------------------------------------------
class Grid:
    """The mode-0 sampling grid ``k·step`` inside ``[start, end)`` (``end`` may be infinite: live sources)."""

    def __init__(self, s: Sampling, duration: float | None, max_frames: int = 0) -> None:
        step = s.interval
        end = s.ss + s.t if s.t else math.inf
        if duration is not None:
            end = min(end, duration)
        if max_frames and math.isfinite(end) and (end - s.ss) / step > max_frames:
            # CONTRACT §11: a grid that would exceed max_frames is widened to spread evenly over the window
            step = math.ceil((end - s.ss) / max_frames * 1000) / 1000
        self.step, self.end = step, end
        self.k0 = math.ceil(s.ss / step - 1e-9)

    def __iter__(self) -> Iterator[tuple[int, float]]:
        k = self.k0
        while k * self.step < self.end:
            yield int(round(k * self.step * 1000)), k * self.step
            k += 1

    def at_or_after(self, t: float) -> float | None:
        """The first grid time ≥ ``t`` (within a microsecond), None past the end."""
        k = max(self.k0, math.ceil((t - 1e-6) / self.step - 1e-9))
        return k * self.step if k * self.step < self.end else None


def interval_targets(s: Sampling, duration: float | None, max_frames: int = 0) -> Iterator[tuple[int, float]]:
    """(offset_ms, seconds) of the grid points ``k·interval`` inside the window and the video.

    With ``max_frames`` and a known duration, a grid that would exceed it is widened so the samples spread
    evenly over the window (CONTRACT §11)."""
    return iter(Grid(s, duration, max_frames))


def decode_needed(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    clock: Clock,
    grid: Grid,
    stops_after: Callable[[float], bool] | None = None,
) -> Iterator[av.VideoFrame]:
    """Decode forward like ``container.decode(stream)``, but let FFmpeg drop the non-reference frames
    (most B-frames) that no grid target will show.

    A frame is shown at target ``T`` when it has the largest pts ≤ ``T``. Packets arrive in decode order
    with ``pts ≥ dts`` and ``dts`` rising, so once a packet with ``dts > T`` has been read, every frame
    shown at or before ``T`` is known: packets are held back until that is so, then sent to the decoder
    with ``skip_frame`` NONREF unless their frame is some target's. Reference frames are always decoded
    (later frames need them), so what comes out is exact, only fewer frames. Measured on the benchmark
    files (x264 veryfast, 3 B-frames): 20–40 % less decoder CPU for 0.16–1 s sampling. A packet without
    pts, or a ``dts`` that goes backwards, turns this off for the rest of the run (decode all).

    A shown frame leaves the decoder only after a few more frames went in (B-frame reordering). When the
    caller will not decode on after it (``stops_after(t)``: it seeks next, or the window ends), the frames
    after it are decoded, not skipped, until it comes out: non-reference B-frames are the cheapest frames
    to push it out with, where skipping them would make the decoder work through the next P-frames
    instead (12 samples of a 1 s-GOP 1080p file: I+P+B per sample rather than I+P+P).
    """
    cc = stream.codec_context
    # The codec context outlives this generator: one abandoned at a seek must not leave its setting
    # behind for the next (nor reset it later, when it is collected), so state is set here, not undone.
    cc.skip_frame = "DEFAULT"
    held: deque[tuple[float, float | None, av.Packet]] = deque()  # (pts s, its target, packet)
    seen: list[float] = []  # sorted pts (s) that may still matter
    max_dts = -math.inf
    exact = True  # False: timestamps can't be trusted, decode everything
    skipping = False

    flushing: set[int] = set()  # pts of shown frames after which decoding stops, not out yet

    def send(packet: av.Packet, skip: bool) -> Iterator[av.VideoFrame]:
        nonlocal skipping
        if not skip and stops_after is not None and packet.pts is not None and stops_after(clock.of(packet.pts)):
            flushing.add(packet.pts)
        skip = skip and not flushing
        if skip != skipping:
            cc.skip_frame = "NONREF" if skip else "DEFAULT"
            skipping = skip
        for frame in _decode_packet(stream, packet):
            if flushing and frame.pts is not None:
                # out in display order: anything due before it was dropped (a damaged packet)
                flushing.difference_update([f for f in flushing if f <= frame.pts])
            yield frame

    def shown(p: float, target: float | None) -> bool:
        if target is None:
            return False  # past the window: only reference frames (for "the next frame") are decoded
        j = bisect.bisect_right(seen, p + 1e-6)
        return not (j < len(seen) and seen[j] <= target + 1e-6)

    for packet in container.demux(stream):
        if packet.size == 0:  # end of stream: flush what is held, then the decoder
            while held:
                p, target, pk = held.popleft()
                yield from send(pk, not shown(p, target))
            yield from send(packet, False)
            continue
        dts = clock.of(packet.dts) if packet.dts is not None else None
        if not exact or packet.pts is None or (dts is not None and dts < max_dts):
            exact = False
            while held:
                yield from send(held.popleft()[2], False)
            yield from send(packet, False)
            continue
        if dts is not None:  # Matroska leaves it unset on some packets: they just prove less
            max_dts = dts
        p = clock.of(packet.pts)
        bisect.insort(seen, p)
        held.append((p, grid.at_or_after(p), packet))
        # A held packet is settled once a later frame at or before its target is known (not shown: the
        # common case, a packet or two later) or once dts has passed its target (shown). One held too
        # long is sent as shown unless proven otherwise: skipping only ever follows from proof.
        while held and (held[0][1] is None or max_dts > held[0][1] + 1e-6 or not shown(held[0][0], held[0][1])
                        or len(held) > HOLD_LIMIT):
            p0, target, pk = held.popleft()
            yield from send(pk, not shown(p0, target))
        # Frames earlier than anything held or still to come can no longer matter. (Dropping one that
        # could would only cost a decode: it is evidence for skipping, never against.)
        low = min([max_dts if max_dts > -math.inf else p - 1.0] + [h[0] for h in held])
        cut = bisect.bisect_left(seen, low - 1e-6)
        if cut > 64:
            del seen[:cut]


def _decode_packet(stream: av.video.stream.VideoStream, packet: av.Packet) -> Iterator[av.VideoFrame]:
    try:
        yield from stream.decode(packet)
    except av.error.InvalidDataError as exc:  # a damaged packet: skip it and go on with the next
        log.warning("skipping undecodable data: %s", exc)


def iter_interval(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    s: Sampling,
    stop: StopCheck = lambda: False,
    max_frames: int = 0,
    frame_threads: bool | None = None,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Mode 0: for each grid target, the frame shown at that time.

    ``frame_threads``: decode with FFmpeg frame threads. None decides from the file: off when samples are
    sparser than two GOPs (nearly every target is a fresh seek, and frame threads make each seek dearer:
    0.25 vs 0.27 s for 5 s sampling of a 1 s-GOP file), on otherwise. Pass False when no core is spare
    (one decoder and one inference worker on two cores: the threads only steal from the worker)."""
    clock = Clock(stream)
    duration = duration_of(container, stream)
    keys = keyframe_times(stream, clock)
    if frame_threads is None:
        gaps = sorted(b - a for a, b in zip(keys, keys[1:]))
        frame_threads = not (gaps and s.interval >= 2 * gaps[len(gaps) // 2])
    if frame_threads:
        stream.thread_type = "AUTO"
    gop_guess = 0.0  # learned when the container has no index
    decoder: Iterator[av.VideoFrame] | None = None
    prev: tuple[float, av.VideoFrame] | None = None  # last frame at or before the current target
    ahead: tuple[float, av.VideoFrame] | None = None  # first frame after it
    last_key = -math.inf
    eof = False

    grid = Grid(s, duration, max_frames)
    min_skip = SEEK_MIN_FRAMES * clock.frame_dur

    def stops_after(t: float) -> bool:
        """Whether decoding forward ends once the frame at ``t`` is shown (a seek or the window's end)."""
        shown_at = grid.at_or_after(t)
        following = grid.at_or_after(shown_at + grid.step / 2) if shown_at is not None else None
        return following is None or _worth_seeking(t, following, keys, last_key, gop_guess, min_skip)

    def start_decoding() -> Iterator[av.VideoFrame]:
        return decode_needed(container, stream, clock, grid, stops_after)

    for offset_ms, target in grid:
        if stop():
            return
        if ahead is not None and ahead[0] <= target:
            prev, ahead = ahead, None
        if ahead is None and not eof:
            position = prev[0] if prev is not None else -math.inf
            seek = _worth_seeking(position, target, keys, last_key, gop_guess, min_skip)
            if decoder is None or seek:
                landed_before = position
                sought, stepped_back = (_seek_before(container, stream, clock, target, start_decoding)
                                        if seek else (None, False))
                if sought is not None:
                    decoder = sought
                    prev = None
                elif decoder is None:
                    decoder = start_decoding()  # from the start, or the source cannot seek
                # where a seek that had to step back lands says nothing about the GOP length
                first = not stepped_back
            else:
                first = False
            while True:
                try:
                    frame = next(decoder)
                except StopIteration:
                    eof = True
                    break
                except av.error.InvalidDataError as exc:  # a damaged packet: skip it
                    log.warning("skipping undecodable data: %s", exc)
                    continue
                t = clock.seconds(frame)
                if frame.key_frame:
                    if first and not keys and t <= landed_before:
                        # the seek went back past where we were: keyframes are sparser than that
                        gop_guess = max(gop_guess, target - t)
                    elif not keys and last_key > -math.inf:
                        gop_guess = max(gop_guess, t - last_key)
                    last_key = t
                first = False
                if t <= target + 1e-6:
                    prev = (t, frame)
                    if t >= target - 1e-6:
                        break  # this frame is shown at the target: no need to decode the next one
                else:
                    ahead = (t, frame)
                    break
        chosen = prev or ahead
        if chosen is None:
            return  # nothing decodable at or after this point
        if eof and prev is not None and duration is None and target > prev[0] + 2 * clock.frame_dur:
            return  # past the last frame of a source of unknown length
        yield offset_ms, chosen[1]


def _seek_before(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    clock: Clock,
    target: float,
    start_decoding: Callable[[], Iterator[av.VideoFrame]],
) -> tuple[Iterator[av.VideoFrame] | None, bool]:
    """Seek to the keyframe at or before ``target`` and decode from there: ``(frames, stepped back)``,
    frames None if the source can't seek.

    Some demuxers land after the target (MPEG-TS seeks by dts and lands on the next keyframe), which
    would show a later frame for it: step further back, doubling, until the first frame is not late.
    A seek past the last keyframe decodes nothing at all (MPEG-TS again): that steps back too."""
    back = 0.0
    late: Iterator[av.VideoFrame] | None = None
    while True:
        when = target - back
        try:
            container.seek(clock.ts(when) if when > 0 else min(0, clock.start), stream=stream,
                           backward=True, any_frame=False)
        except av.error.FFmpegError:
            # Not seekable; or the step back failed after a seek that worked, when decoding on from
            # where that one landed beats keeping frames from before it.
            return late, back > 0
        frames = start_decoding()
        first = next(frames, None)
        if first is not None and (when <= 0 or first.pts is None or clock.seconds(first) <= target + 1e-6):
            return itertools.chain([first], frames), back > 0
        late = itertools.chain([first], frames) if first is not None else iter(())
        if when <= 0:
            return late, True
        back = max(1.0, 2 * back)


def _worth_seeking(position: float, target: float, keys: Sequence[float], last_key: float,
                   gop_guess: float, min_skip: float = 0.0) -> bool:
    """Seek only if a keyframe lies after the current position and at or before the target, and far
    enough ahead (``min_skip`` s) that skipping to it saves more than a seek costs (a decoder flush,
    which with frame threads also throws away the frames already being decoded ahead)."""
    if position == -math.inf:
        return target > 0
    if keys:
        i = bisect.bisect_right(keys, target + 1e-6) - 1
        return i >= 0 and keys[i] > position + max(min_skip, 1e-6)
    # No index: guess from the keyframes seen so far; unknown GOP → try seeking for gaps over 1 s.
    gop = gop_guess or 1.0
    return target - position > gop and target - last_key > gop


# -- mode 1 -----------------------------------------------------------------------------------------
def iter_keyframes(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    s: Sampling,
    stop: StopCheck = lambda: False,
    reopen: Callable[[], tuple[av.container.InputContainer, av.video.stream.VideoStream]] | None = None,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Mode 1: keyframes by their pts, plus exact frames every ``max_gap`` s where keyframes are sparser."""
    clock = Clock(stream)
    stream.codec_context.skip_frame = "NONKEY"
    end = s.ss + s.t if s.t else math.inf
    duration = duration_of(container, stream)
    if s.ss > 0:
        try:
            container.seek(clock.ts(s.ss), stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            pass
    last_emit = s.ss - 1e-9  # a gap is measured from the window start too
    emitted_any = False

    def gap_fill(upto: float) -> Iterator[tuple[int, av.VideoFrame]]:
        nonlocal last_emit
        if reopen is None or s.max_gap <= 0:
            return
        first = last_emit + s.max_gap if emitted_any else s.ss
        targets = []
        t = max(first, s.ss)
        while t < min(upto, end) - 1e-6 and (upto - t) > 1e-3:
            targets.append(t)
            t += s.max_gap
        if not targets:
            return
        c2, st2 = reopen()
        try:
            for _off, frame in _exact_frames(c2, st2, targets, stop):
                t2 = Clock(st2).seconds(frame)
                if t2 <= last_emit + 1e-6 and emitted_any:
                    continue
                last_emit = t2
                yield ms(t2), frame
        finally:
            c2.close()

    def emit(frame: av.VideoFrame) -> Iterator[tuple[int, av.VideoFrame]]:
        nonlocal last_emit, emitted_any
        t = clock.seconds(frame)
        if t < s.ss - 1e-6 or t >= end:
            return
        if t - (last_emit if emitted_any else s.ss) > s.max_gap + 1e-6:
            yield from gap_fill(t)
        last_emit = t
        emitted_any = True
        yield ms(t), frame

    end_ts = clock.ts(end + 1) if math.isfinite(end) else None
    for packet in container.demux(stream):
        if stop():
            return
        if end_ts is not None and packet.pts is not None and packet.pts >= end_ts:
            break
        if not packet.is_keyframe and packet.size:
            continue
        try:
            frames = stream.decode(packet)
        except av.error.InvalidDataError as exc:
            log.warning("skipping undecodable keyframe: %s", exc)
            continue
        for frame in frames:
            yield from emit(frame)
        if emitted_any and last_emit >= end:
            return
    try:
        for frame in stream.decode(None):
            yield from emit(frame)
    except av.error.FFmpegError:
        pass
    tail_end = min(end, duration) if duration is not None else None
    if tail_end is not None and tail_end - (last_emit if emitted_any else s.ss) > s.max_gap:
        yield from gap_fill(tail_end)


def _exact_frames(container, stream, targets: list[float], stop: StopCheck):
    """Frames shown at the given times (seek + decode forward), for the keyframe-gap fallback."""
    plan = Sampling(mode=0, interval=1.0, ss=0.0, t=None)
    clock = Clock(stream)
    stream.thread_type = "AUTO"
    for target in targets:
        if stop():
            return
        container.seek(clock.ts(target), stream=stream, backward=True, any_frame=False)
        best = None
        for frame in container.decode(stream):
            t = clock.seconds(frame)
            if t <= target + 1e-6 or best is None:
                best = frame
            if t > target:
                break
        if best is not None:
            yield ms(target), best
    del plan


# -- conversion -------------------------------------------------------------------------------------
class Converter:
    """Turns a decoded frame into RGB renditions written straight into destination arrays.

    One swscale context per rendition size is reused (PyAV's VideoReformatter caches it), which is what
    makes converting straight to the model size cheap."""

    def __init__(self, specs: Sequence[FrameSpec], src_w: int, src_h: int) -> None:
        self.specs = tuple(specs)
        self.sizes = [spec.size_for(src_w, src_h) for spec in self.specs]
        self._reformatters = [VideoReformatter() for _ in self.specs]

    def shapes(self) -> list[tuple[int, int, int]]:
        return [(h, w, 3) for (w, h) in self.sizes]

    def convert_into(self, frame: av.VideoFrame, outs: Sequence[np.ndarray]) -> None:
        for ref, (w, h), out in zip(self._reformatters, self.sizes, outs):
            rgb = ref.reformat(frame, width=w, height=h, format="rgb24", interpolation=Interpolation.BILINEAR)
            np.copyto(out, rgb.to_ndarray())

    def convert(self, frame: av.VideoFrame) -> list[np.ndarray]:
        outs = [np.empty(shape, np.uint8) for shape in self.shapes()]
        self.convert_into(frame, outs)
        return outs


def sample(
    uri: str, s: Sampling, stop: StopCheck = lambda: False, *, timeout: float = 30.0, max_frames: int = 0,
    frame_threads: bool | None = None, source_options: dict[str, str] | None = None,
) -> Iterator[tuple[int, av.VideoFrame]]:
    """Open ``uri`` and yield ``(offset_ms, frame)`` per CONTRACT §2 (for embedders and tests).

    Raises the documented :class:`~argus_core.errors.ArgusError` for unreachable or undecodable sources."""
    container, stream = open_video(uri, timeout, source_options)
    produced = 0
    try:
        if s.mode == 1:
            it = iter_keyframes(container, stream, s, stop,
                                reopen=lambda: open_video(uri, timeout, source_options))
        else:
            it = iter_interval(container, stream, s, stop, max_frames, frame_threads)
        for item in it:
            produced += 1
            yield item
    except ArgusError:
        raise
    except av.error.FFmpegError as exc:
        if produced == 0:
            raise map_av_error(exc) from None
        log.warning("stream ended with an error after %d frames: %s", produced, exc)
    finally:
        container.close()
    if produced == 0 and not stop() and _nothing_decodable(uri, timeout, source_options):
        raise CannotOpen(detail="no decodable frame")


def _nothing_decodable(uri: str, timeout: float, options: dict[str, str] | None = None) -> bool:
    """True when not a single frame of the video decodes (a window past the end is not an error)."""
    try:
        container, stream = open_video(uri, timeout, options)
    except ArgusError:
        return True
    try:
        for _frame in container.decode(stream):
            return False
        return True
    except av.error.FFmpegError:
        return True
    finally:
        container.close()
