"""The one decode loop (CONTRACT §2): which frames, at which offsets, decoded the cheapest way.

Every frame Argus looks at comes from here — the engine's decoder processes, the frames-only task
(``/v1/vframe``), saving kept cuts, and (later) the shot detector of the abstracts — so there is one media
clock (:mod:`argus_core.media.clock`) and one rule for "the frame shown at time T".

- mode 0: one frame every ``interval`` s on the grid ``k·interval`` (offset exactly ``round(k·interval·1000)``
  ms, the frame shown at that time), restricted to the ``[ss, ss+t)`` window. Per target the sampler either
  decodes forward or seeks: it seeks only when a keyframe lies between the current position and the
  target (known from the container's index, else learned from the keyframes seen) more than a dozen
  frames ahead, so sparse sampling of short GOPs seeks and dense sampling / long GOPs decode forward.
  Decoding forward, FFmpeg drops the non-reference frames no target shows (:func:`decode_needed`).
- A second consumer may ask for extra frames in the same pass (``tap``: another grid, e.g. every 200 ms for
  shot detection). The decode loop then runs over the union of both grids and says for each frame who
  wanted it; with no tap nothing changes, B-frame skipping included.
- Explicit offsets (:func:`frames_at`): the frames shown at given ms offsets, for saving cuts.
- mode 1: keyframes only, by feeding only keyframe packets to the decoder (``skip_frame=NONKEY`` as
  well; VP9 ignores the latter). Offsets come from each frame's pts. When no keyframe comes for
  ``max_gap`` s, exact frames are taken at that spacing so long GOPs are never unsampled.

The sampler only yields frames (``av.VideoFrame``) with their offsets; conversion into ring slots is
:class:`~argus_core.media.renditions.Converter`'s job.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections import deque
from typing import Callable, Iterable, Iterator, NamedTuple, Protocol, Sequence

import av
import av.error

from ..errors import ArgusError, CannotOpen
from ..request import MAX_SECONDS, MIN_INTERVAL_S, Sampling, bounded, clamp
from .clock import Clock, keyframe_times, ms
from .renditions import upright
from .source import OpenedVideo, Source, map_av_error, source_for

log = logging.getLogger("argus.sampler")

StopCheck = Callable[[], bool]
#: shown every frame the mode-0 loop decodes, in display order, with its time (s from the start): the
#: frames between two targets that were decoded anyway (reference frames, mostly), for a consumer that can
#: use them (the shot detector's cut refinement, issue 11). It must not keep them beyond a few frames.
Observer = Callable[[float, av.VideoFrame], None]
#: seek forward only past this many frames (cheaper to decode through fewer)
SEEK_MIN_FRAMES = 12
#: packets decode_needed holds at most while it cannot yet tell whether their frame is shown
HOLD_LIMIT = 64
#: who asked for a sampled frame (bit mask): the ops, the abstract's frame tap, an op's neighbour frames
OPS, TAP, SIDE = 1, 2, 4


class Sample(NamedTuple):
    """A sampled frame: its offset (ms, CONTRACT §2), the frame, and who asked for it (:data:`OPS`/:data:`TAP`)."""

    offset_ms: int
    frame: av.VideoFrame
    wanted: int = OPS


# -- targets ----------------------------------------------------------------------------------------
class Targets(Protocol):
    """Times (s) at which a frame is wanted, in increasing order: each yields ``(offset_ms, t, who)``."""

    def __iter__(self) -> Iterator[tuple[int, float, int]]: ...

    def at_or_after(self, t: float) -> float | None:
        """The first target time ≥ ``t`` (within a microsecond), None past the last."""
        ...

    def after(self, t: float) -> float | None:
        """The first target time > ``t``, None past the last."""
        ...


class Grid:
    """The mode-0 sampling grid ``k·step`` inside ``[start, end)`` (``end`` may be infinite: live sources)."""

    def __init__(self, s: Sampling, duration: float | None, max_frames: int = 0, who: int = OPS) -> None:
        # bounded again here (parse_request already refuses such values): an embedder's Sampling of
        # interval 1e-300 or ss 1e15 must not overflow ``ss / step`` or ``k * step * 1000``
        step = clamp(s.interval, MIN_INTERVAL_S, MAX_SECONDS)
        ss = clamp(s.ss, 0.0, MAX_SECONDS)
        end = ss + clamp(s.t, 0.0, MAX_SECONDS) if s.t else math.inf
        if duration is not None:
            end = min(end, duration)
        if max_frames and math.isfinite(end) and (end - ss) / step > max_frames:
            # CONTRACT §11: a grid that would exceed max_frames is widened to spread evenly over the window
            step = math.ceil((end - ss) / max_frames * 1000) / 1000
        self.step, self.end, self.who = step, end, who
        self.k0 = math.ceil(ss / step - 1e-9)

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        k = self.k0
        while k * self.step < self.end:
            yield int(round(k * self.step * 1000)), k * self.step, self.who
            k += 1

    def at_or_after(self, t: float) -> float | None:
        k = max(self.k0, math.ceil((t - 1e-6) / self.step - 1e-9))
        return k * self.step if k * self.step < self.end else None

    def after(self, t: float) -> float | None:
        k = max(self.k0, math.floor(t / self.step + 1e-9) + 1)
        return k * self.step if k * self.step < self.end else None


#: offsets are whole ms (rounded): the frame they name may lie up to half a millisecond after them
OFFSET_SLACK_S = 0.0005


class Offsets:
    """Explicit targets: the given ms offsets (sorted, deduplicated), each the frame shown at that offset."""

    def __init__(self, offsets_ms: Iterable[int], who: int = OPS) -> None:
        self.offsets = sorted(set(int(o) for o in offsets_ms))
        self.times = [o / 1000.0 + OFFSET_SLACK_S for o in self.offsets]
        self.who = who

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        for o, t in zip(self.offsets, self.times):
            yield o, t, self.who

    def at_or_after(self, t: float) -> float | None:
        i = bisect.bisect_left(self.times, t - 1e-6)
        return self.times[i] if i < len(self.times) else None

    def after(self, t: float) -> float | None:
        i = bisect.bisect_right(self.times, t + 1e-6)
        return self.times[i] if i < len(self.times) else None


class Union:
    """Two consumers' targets in one pass; coinciding times (within a microsecond) merge into one."""

    def __init__(self, a: Targets, b: Targets) -> None:
        self.a, self.b = a, b

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        ia, ib = iter(self.a), iter(self.b)
        na, nb = next(ia, None), next(ib, None)
        while na is not None or nb is not None:
            if nb is None or (na is not None and na[1] < nb[1] - 1e-6):
                yield na
                na = next(ia, None)
            elif na is None or nb[1] < na[1] - 1e-6:
                yield nb
                nb = next(ib, None)
            else:  # the same time: one frame for both, at the first consumer's offset
                yield na[0], na[1], na[2] | nb[2]
                na, nb = next(ia, None), next(ib, None)

    def at_or_after(self, t: float) -> float | None:
        return _min(self.a.at_or_after(t), self.b.at_or_after(t))

    def after(self, t: float) -> float | None:
        return _min(self.a.after(t), self.b.after(t))


class Shifted:
    """``base``'s times moved by ``by`` seconds (those at or after 0), wanted by ``who``: the t−500 / t+500 ms
    neighbours pulp averages (ORIGINAL-BEHAVIOUR.md §2, "Pulp special case")."""

    def __init__(self, base: Targets, by: float, who: int = SIDE) -> None:
        self.base, self.by, self.who = base, by, who

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        for _, t, _ in self.base:
            u = t + self.by
            if u >= 0.0:
                yield int(round(u * 1000)), u, self.who

    def _from(self, b: float | None) -> float | None:
        while b is not None and b + self.by < 0.0:
            b = self.base.after(b)
        return None if b is None else b + self.by

    def at_or_after(self, t: float) -> float | None:
        return self._from(self.base.at_or_after(t - self.by))

    def after(self, t: float) -> float | None:
        return self._from(self.base.after(t - self.by))


def with_neighbours(base: Targets, ms: int) -> Targets:
    """``base`` plus a :data:`SIDE` target ``ms`` before and after each of its times (coinciding times merge)."""
    d = ms / 1000.0
    return Union(base, Union(Shifted(base, -d), Shifted(base, d)))


class _Anything:
    """Targets for random access (:class:`FrameGrabber`): any frame may be asked for next, so none is
    skipped and decoding never plans a seek of its own."""

    def __iter__(self) -> Iterator[tuple[int, float, int]]:
        return iter(())

    def at_or_after(self, t: float) -> float | None:
        return t

    def after(self, t: float) -> float | None:
        return t + 1e-3


def _min(x: float | None, y: float | None) -> float | None:
    return y if x is None else x if y is None else min(x, y)


def interval_targets(s: Sampling, duration: float | None, max_frames: int = 0) -> Iterator[tuple[int, float]]:
    """(offset_ms, seconds) of the grid points ``k·interval`` inside the window and the video.

    With ``max_frames`` and a known duration, a grid that would exceed it is widened so the samples spread
    evenly over the window (CONTRACT §11)."""
    return ((o, t) for o, t, _who in Grid(s, duration, max_frames))


# -- decoding only what a target shows --------------------------------------------------------------
class _Held(NamedTuple):
    pts: float  # s
    target: float | None  # the target this frame could be shown at
    packet: av.Packet


class _NeededFrames:
    """State of :func:`decode_needed`: the packets held back, the pts seen, and the decoder's skip mode."""

    def __init__(self, stream: av.video.stream.VideoStream, clock: Clock, targets: Targets,
                 stops_after: Callable[[float], bool] | None) -> None:
        self.stream, self.clock, self.targets, self.stops_after = stream, clock, targets, stops_after
        self.cc = stream.codec_context
        self.held: deque[_Held] = deque()
        self.seen: list[float] = []  # sorted pts (s) that may still matter
        self.max_dts = -math.inf
        self.exact = True  # False: timestamps can't be trusted, decode everything
        self.skipping = False
        self.flushing: set[int] = set()  # pts of shown frames after which decoding stops, not out yet

    def send(self, packet: av.Packet, skip: bool) -> Iterator[av.VideoFrame]:
        """Decode one packet, with FFmpeg skipping non-reference frames when ``skip``."""
        if not skip and self.stops_after is not None and packet.pts is not None \
                and self.stops_after(self.clock.of(packet.pts)):
            self.flushing.add(packet.pts)
        skip = skip and not self.flushing
        if skip != self.skipping:
            self.cc.skip_frame = "NONREF" if skip else "DEFAULT"
            self.skipping = skip
        for frame in _decode_packet(self.stream, packet):
            if self.flushing and frame.pts is not None:
                # out in display order: anything due before it was dropped (a damaged packet)
                self.flushing.difference_update([f for f in self.flushing if f <= frame.pts])
            yield frame

    def shown(self, h: _Held) -> bool:
        """Whether no later-known frame comes at or before this one's target (so it is shown)."""
        if h.target is None:
            return False  # past the window: only reference frames (for "the next frame") are decoded
        j = bisect.bisect_right(self.seen, h.pts + 1e-6)
        return not (j < len(self.seen) and self.seen[j] <= h.target + 1e-6)

    def settled(self, h: _Held) -> bool:
        # Settled once a later frame at or before its target is known (not shown: the common case, a packet
        # or two later) or once dts has passed its target (shown). One held too long is sent as shown
        # unless proven otherwise: skipping only ever follows from proof.
        return (h.target is None or self.max_dts > h.target + 1e-6 or not self.shown(h)
                or len(self.held) > HOLD_LIMIT)

    def flush_held(self, trusted: bool) -> Iterator[av.VideoFrame]:
        while self.held:
            h = self.held.popleft()
            yield from self.send(h.packet, trusted and not self.shown(h))

    def prune(self, p: float) -> None:
        # Frames earlier than anything held or still to come can no longer matter. (Dropping one that
        # could would only cost a decode: it is evidence for skipping, never against.)
        low = min([self.max_dts if self.max_dts > -math.inf else p - 1.0] + [h.pts for h in self.held])
        cut = bisect.bisect_left(self.seen, low - 1e-6)
        if cut > 64:
            del self.seen[:cut]

    def push(self, packet: av.Packet) -> Iterator[av.VideoFrame]:
        """Take one demuxed packet: hold it until it is known whether a target shows its frame."""
        if packet.size == 0:  # end of stream: flush what is held, then the decoder
            yield from self.flush_held(trusted=True)
            yield from self.send(packet, False)
            return
        dts = self.clock.of(packet.dts) if packet.dts is not None else None
        if not self.exact or packet.pts is None or (dts is not None and dts < self.max_dts):
            self.exact = False
            yield from self.flush_held(trusted=False)
            yield from self.send(packet, False)
            return
        if dts is not None:  # Matroska leaves it unset on some packets: they just prove less
            self.max_dts = dts
        p = self.clock.of(packet.pts)
        bisect.insort(self.seen, p)
        self.held.append(_Held(p, self.targets.at_or_after(p), packet))
        while self.held and self.settled(self.held[0]):
            h = self.held.popleft()
            yield from self.send(h.packet, not self.shown(h))
        self.prune(p)


def decode_needed(
    container: av.container.InputContainer,
    stream: av.video.stream.VideoStream,
    clock: Clock,
    targets: Targets,
    stops_after: Callable[[float], bool] | None = None,
) -> Iterator[av.VideoFrame]:
    """Decode forward like ``container.decode(stream)``, but let FFmpeg drop the non-reference frames
    (most B-frames) that no target will show.

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
    # The codec context outlives this generator: one abandoned at a seek must not leave its setting
    # behind for the next (nor reset it later, when it is collected), so state is set here, not undone.
    stream.codec_context.skip_frame = "DEFAULT"
    state = _NeededFrames(stream, clock, targets, stops_after)
    for packet in container.demux(stream):
        yield from state.push(packet)


def _decode_packet(stream: av.video.stream.VideoStream, packet: av.Packet) -> Iterator[av.VideoFrame]:
    try:
        yield from stream.decode(packet)
    except av.error.InvalidDataError as exc:  # a damaged packet: skip it and go on with the next
        log.warning("skipping undecodable data: %s", exc)


# -- mode 0: the frame shown at each target -----------------------------------------------------------
def frame_threads_for_file(keys: Sequence[float], interval: float) -> bool:
    """Frame threads pay unless samples are sparser than two GOPs: then nearly every target is a fresh
    seek, and frame threads make each seek dearer (0.25 vs 0.27 s for 5 s sampling of a 1 s-GOP file)."""
    gaps = sorted(b - a for a, b in zip(keys, keys[1:]))
    return not (gaps and interval >= 2 * gaps[len(gaps) // 2])


class _Cursor:
    """Where mode-0 decoding stands: the last frame at or before the current target (``prev``), the first
    after it (``ahead``), and what has been learned about keyframe spacing on the way."""

    def __init__(self, video: OpenedVideo, clock: Clock, targets: Targets, keys: list[float],
                 observe: Observer | None = None) -> None:
        self.container, self.stream = video.container, video.stream
        self.clock, self.targets, self.keys, self.observe = clock, targets, keys, observe
        self.min_skip = SEEK_MIN_FRAMES * clock.frame_dur
        self.decoder: Iterator[av.VideoFrame] | None = None
        self.prev: tuple[float, av.VideoFrame] | None = None
        self.ahead: tuple[float, av.VideoFrame] | None = None
        self.last_key = -math.inf
        self.gop_guess = 0.0  # learned when the container has no index
        self.eof = False

    def worth_seeking(self, position: float, target: float) -> bool:
        return _worth_seeking(position, target, self.keys, self.last_key, self.gop_guess, self.min_skip)

    def stops_after(self, t: float) -> bool:
        """Whether decoding forward ends once the frame at ``t`` is shown (a seek or the window's end)."""
        shown_at = self.targets.at_or_after(t)
        following = self.targets.after(shown_at) if shown_at is not None else None
        return following is None or self.worth_seeking(t, following)

    def start_decoding(self) -> Iterator[av.VideoFrame]:
        return decode_needed(self.container, self.stream, self.clock, self.targets, self.stops_after)

    def position_for(self, target: float) -> tuple[float, bool]:
        """Seek when that pays, else decode on: ``(position before, whether the next keyframe tells the
        GOP length)``."""
        position = self.prev[0] if self.prev is not None else -math.inf
        seek = self.worth_seeking(position, target)
        if self.decoder is not None and not seek:
            return position, False
        sought, stepped_back = (_seek_before(self.container, self.stream, self.clock, target, self.start_decoding)
                                if seek else (None, False))
        if sought is not None:
            self.decoder = sought
            self.prev = None
        elif self.decoder is None:
            self.decoder = self.start_decoding()  # from the start, or the source cannot seek
        # where a seek that had to step back lands says nothing about the GOP length
        return position, not stepped_back

    def learn_keyframe(self, t: float, first: bool, landed_before: float, target: float) -> None:
        if first and not self.keys and t <= landed_before:
            # the seek went back past where we were: keyframes are sparser than that
            self.gop_guess = max(self.gop_guess, target - t)
        elif not self.keys and self.last_key > -math.inf:
            self.gop_guess = max(self.gop_guess, t - self.last_key)
        self.last_key = t

    def decode_to(self, target: float) -> None:
        """Decode until the frame shown at ``target`` is known (``prev``) or the next one is (``ahead``)."""
        landed_before, first = self.position_for(target)
        assert self.decoder is not None
        while True:
            try:
                frame = next(self.decoder)
            except StopIteration:
                self.eof = True
                return
            except av.error.InvalidDataError as exc:  # a damaged packet: skip it
                log.warning("skipping undecodable data: %s", exc)
                continue
            t = self.clock.seconds(frame)
            if self.observe is not None:
                self.observe(t, frame)
            if frame.key_frame:
                self.learn_keyframe(t, first, landed_before, target)
            first = False
            if t <= target + 1e-6:
                self.prev = (t, frame)
                if t >= target - 1e-6:
                    return  # this frame is shown at the target: no need to decode the next one
            else:
                self.ahead = (t, frame)
                return

    def shown_at(self, target: float) -> av.VideoFrame | None:
        """The frame shown at ``target`` (or the first after it, before the first frame)."""
        if self.ahead is not None and self.ahead[0] <= target:
            self.prev, self.ahead = self.ahead, None
        if self.ahead is None and not self.eof:
            self.decode_to(target)
        chosen = self.prev or self.ahead
        return None if chosen is None else chosen[1]


def iter_targets(
    video: OpenedVideo,
    targets: Targets,
    stop: StopCheck = lambda: False,
    frame_threads: bool | None = None,
    interval: float | None = None,
    observe: Observer | None = None,
) -> Iterator[Sample]:
    """For each target, the frame shown at that time (mode 0 and explicit offsets).

    ``frame_threads``: decode with FFmpeg frame threads. None decides from the file
    (:func:`frame_threads_for_file`, by ``interval``). Pass False when no core is spare (one decoder and one
    inference worker on two cores: the threads only steal from the worker)."""
    clock = Clock(video.stream)
    keys = keyframe_times(video.stream, clock)
    if frame_threads is None:
        frame_threads = interval is None or frame_threads_for_file(keys, interval)
    if frame_threads:
        video.stream.thread_type = "AUTO"
    cursor = _Cursor(video, clock, targets, keys, observe)
    for offset_ms, target, who in targets:
        if stop():
            return
        frame = cursor.shown_at(target)
        if frame is None:
            return  # nothing decodable at or after this point
        prev = cursor.prev
        if cursor.eof and prev is not None and video.duration is None and target > prev[0] + 2 * clock.frame_dur:
            return  # past the last frame of a source of unknown length
        yield Sample(offset_ms, frame, who)


def iter_interval(
    video: OpenedVideo,
    s: Sampling,
    stop: StopCheck = lambda: False,
    max_frames: int = 0,
    frame_threads: bool | None = None,
    tap: Sampling | None = None,
    neighbours_ms: int = 0,
    observe: Observer | None = None,
) -> Iterator[Sample]:
    """Mode 0: for each grid target, the frame shown at that time; with ``tap``, the frames of a second
    grid too; with ``neighbours_ms``, the frames that far before and after each grid target (each
    :class:`Sample` says who wanted it); ``observe`` is shown every decoded frame."""
    targets: Targets = Grid(s, video.duration, max_frames)
    interval = s.interval
    if neighbours_ms:
        targets = with_neighbours(targets, neighbours_ms)
        interval = min(interval, neighbours_ms / 1000.0)
    if tap is not None:
        targets = Union(targets, Grid(tap, video.duration, who=TAP))
        interval = min(interval, tap.interval)
    return iter_targets(video, targets, stop, frame_threads, interval, observe)


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


# -- mode 1: keyframes ------------------------------------------------------------------------------
class _KeyframeWalk:
    """Mode 1 state: keyframes by their pts, plus exact frames every ``max_gap`` s where they are sparser."""

    def __init__(self, video: OpenedVideo, s: Sampling, stop: StopCheck,
                 reopen: Callable[[], OpenedVideo] | None) -> None:
        self.video, self.s, self.stop, self.reopen = video, s, stop, reopen
        self.clock = Clock(video.stream)
        self.end = s.ss + s.t if s.t else math.inf
        self.last_emit = s.ss - 1e-9  # a gap is measured from the window start too
        self.emitted_any = False

    def gap_targets(self, upto: float) -> list[float]:
        s = self.s
        first = self.last_emit + s.max_gap if self.emitted_any else s.ss
        targets = []
        t = max(first, s.ss)
        while t < min(upto, self.end) - 1e-6 and (upto - t) > 1e-3:
            targets.append(t)
            t += s.max_gap
        return targets

    def gap_fill(self, upto: float) -> Iterator[Sample]:
        """Exact frames at ``max_gap`` spacing up to ``upto``, from a second opening of the source."""
        if self.reopen is None or self.s.max_gap <= 0:
            return
        targets = self.gap_targets(upto)
        if not targets:
            return
        with self.reopen() as other:
            for frame in _exact_frames(other, targets, self.stop):
                t2 = Clock(other.stream).seconds(frame)
                if t2 <= self.last_emit + 1e-6 and self.emitted_any:
                    continue
                self.last_emit = t2
                yield Sample(ms(t2), frame)

    def emit(self, frame: av.VideoFrame) -> Iterator[Sample]:
        s = self.s
        t = self.clock.seconds(frame)
        if t < s.ss - 1e-6 or t >= self.end:
            return
        if t - (self.last_emit if self.emitted_any else s.ss) > s.max_gap + 1e-6:
            yield from self.gap_fill(t)
        self.last_emit = t
        self.emitted_any = True
        yield Sample(ms(t), frame)

    def keyframes(self) -> Iterator[av.VideoFrame]:
        """Decoded keyframes of the window (only keyframe packets reach the decoder)."""
        container, stream = self.video.container, self.video.stream
        end_ts = self.clock.ts(self.end + 1) if math.isfinite(self.end) else None
        for packet in container.demux(stream):
            if self.stop():
                return
            if end_ts is not None and packet.pts is not None and packet.pts >= end_ts:
                break
            if not packet.is_keyframe and packet.size:
                continue
            try:
                yield from stream.decode(packet)
            except av.error.InvalidDataError as exc:
                log.warning("skipping undecodable keyframe: %s", exc)
                continue
            if self.emitted_any and self.last_emit >= self.end:
                return
        try:
            yield from stream.decode(None)
        except av.error.FFmpegError:
            pass

    def __iter__(self) -> Iterator[Sample]:
        s, stream = self.s, self.video.stream
        stream.codec_context.skip_frame = "NONKEY"
        if s.ss > 0:
            try:
                self.video.container.seek(self.clock.ts(s.ss), stream=stream, backward=True, any_frame=False)
            except av.error.FFmpegError:
                pass
        for frame in self.keyframes():
            yield from self.emit(frame)
            if self.stop():
                return
        duration = self.video.duration
        tail_end = min(self.end, duration) if duration is not None else None
        if tail_end is not None and tail_end - (self.last_emit if self.emitted_any else s.ss) > s.max_gap:
            yield from self.gap_fill(tail_end)


def iter_keyframes(
    video: OpenedVideo, s: Sampling, stop: StopCheck = lambda: False,
    reopen: Callable[[], OpenedVideo] | None = None,
) -> Iterator[Sample]:
    """Mode 1: keyframes by their pts, plus exact frames every ``max_gap`` s where keyframes are sparser."""
    return iter(_KeyframeWalk(video, s, stop, reopen))


def _exact_frames(video: OpenedVideo, targets: list[float], stop: StopCheck) -> Iterator[av.VideoFrame]:
    """Frames shown at the given times (seek + decode forward), for the keyframe-gap fallback."""
    container, stream = video.container, video.stream
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
            yield best


# -- the loop every caller uses ---------------------------------------------------------------------
def frames(
    video: OpenedVideo, s: Sampling, stop: StopCheck = lambda: False, *, max_frames: int = 0,
    frame_threads: bool | None = None, reopen: Callable[[], OpenedVideo] | None = None,
    tap: Sampling | None = None, neighbours_ms: int = 0, observe: Observer | None = None,
) -> Iterator[Sample]:
    """The frames a plan asks for from an opened video (mode 0 grid ∪ ``tap`` ∪ the grid's ±``neighbours_ms``
    frames, or mode 1 keyframes, which have no neighbours).

    ``max_frames`` (CONTRACT §11) bounds every plan: a known-length mode-0 window spreads its grid evenly
    (:class:`Grid`); keyframes and the grid of an endless source end after ``max_frames`` ops frames (a looped
    H.264 over HTTP in keyframe mode ran to 14,069 frames before this cap, issue 10)."""
    s = bounded(s)
    if s.mode == 1:
        if tap is not None or observe is not None:
            raise ValueError("a frame tap or an observer needs mode-0 sampling")
        return _capped(iter_keyframes(video, s, stop, reopen), max_frames)
    return _capped(iter_interval(video, s, stop, max_frames, frame_threads, tap, neighbours_ms, observe),
                   max_frames)


def _capped(samples: Iterator[Sample], max_frames: int) -> Iterator[Sample]:
    """``samples`` up to the ``max_frames``-th one the ops asked for (0: no cap); tap-only frames are free."""
    if not max_frames:
        yield from samples
        return
    count = 0
    for item in samples:
        yield item
        if item.wanted & OPS:
            count += 1
            if count >= max_frames:
                return


def sample(
    uri: str | Source, s: Sampling, stop: StopCheck = lambda: False, *, timeout: float = 30.0, max_frames: int = 0,
    frame_threads: bool | None = None, source_options: dict[str, str] | None = None,
    tap: Sampling | None = None,
) -> Iterator[tuple[int, av.VideoFrame]] | Iterator[Sample]:
    """Open a source and yield ``(offset_ms, frame)`` per CONTRACT §2 (with ``tap``: :class:`Sample` s,
    which say who wanted each frame).

    Raises the documented :class:`~argus_core.errors.ArgusError` for unreachable or undecodable sources."""
    source = uri if not isinstance(uri, str) else source_for(uri, timeout, source_options)
    for item in _guarded(source, lambda v: frames(v, s, stop, max_frames=max_frames, frame_threads=frame_threads,
                                                  reopen=source.open, tap=tap), stop):
        yield item if tap is not None else (item.offset_ms, item.frame)


def frames_at(source: Source, offsets_ms: Iterable[int], stop: StopCheck = lambda: False) -> Iterator[Sample]:
    """The frames shown at the given offsets (ms, in increasing order), e.g. to save kept cuts at full size."""
    targets = Offsets(offsets_ms)
    return _guarded(source, lambda v: iter_targets(v, targets, stop), stop, require_frames=False)


def _guarded(source: Source, run: Callable[[OpenedVideo], Iterator[Sample]], stop: StopCheck,
             require_frames: bool = True) -> Iterator[Sample]:
    """Open, iterate and close; map FFmpeg errors before the first frame (after it: log and end)."""
    produced = 0
    with source.open() as video:
        try:
            for item in run(video):
                produced += 1
                yield item
        except ArgusError:
            raise
        except av.error.FFmpegError as exc:
            if produced == 0:
                raise map_av_error(exc) from None
            log.warning("stream ended with an error after %d frames: %s", produced, exc)
    if require_frames and produced == 0 and not stop() and source.nothing_decodable():
        raise CannotOpen(detail="no decodable frame")


class FrameGrabber:
    """The frames shown at offsets asked for one at a time (saving kept cuts at full size, as segments
    close): the same cursor and clock as every other sampling, over one opening of the source. Offsets
    asked in increasing order decode forward (seeking where a keyframe lies far enough ahead); one that
    goes back starts a fresh cursor."""

    def __init__(self, source: Source) -> None:
        self.video = source.open()
        self._clock = Clock(self.video.stream)
        self._cursor: _Cursor | None = None
        self._last = -math.inf

    def frame_at(self, offset_ms: int) -> av.VideoFrame | None:
        t = offset_ms / 1000.0 + OFFSET_SLACK_S
        if self._cursor is None or t < self._last:
            self._cursor = _Cursor(self.video, self._clock, _Anything(),
                                   keyframe_times(self.video.stream, self._clock))
        self._last = t
        frame = self._cursor.shown_at(t)
        return None if frame is None else upright(frame)  # as shown: saved cuts and thumbnails match the boxes

    def close(self) -> None:
        self.video.close()
