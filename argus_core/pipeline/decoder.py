"""The decoder process: one video at a time, sampled by the one decode loop (:mod:`argus_core.media.sampler`),
each frame converted straight into a ring slot the parent granted, its index posted back.

Talks to the parent in :mod:`~argus_core.pipeline.messages` Structs over its own pipe; a job's decoding
stops at the next frame once the parent says ``StopJob`` (every op terminated, cancelled, failed).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import time
from collections import deque
from multiprocessing.connection import Connection

from ..errors import ArgusError, CannotOpen, ErrorWire, VideoNotFound, VideoTooLong, to_wire
from ..media import live as livemod
from ..media.clock import LiveClock
from ..media.renditions import Converter
from ..media.sampler import OPS, SIDE, Sample, frames
from ..media.source import LiveSource, OpenedVideo, Source, map_av_error, require_protocol, source_for
from .messages import (DecodeDone, DecodeJob, Exit, FrameReady, GrantSlots, LiveBreak, LiveStatus, Sides, StopJob,
                       VideoMeta, decoder_side)
from .ring import SIDE_AFTER, SIDE_BEFORE, FrameRing

log = logging.getLogger("argus.decoder")


class _Exit(Exception):
    """The parent said Exit (or went away) while a job was running."""


def child_setup() -> None:
    """Children leave Ctrl-C and SIGTERM to the parent, which tells them to exit (and frees the ring).

    A terminal's Ctrl-C, ``timeout``, systemd's ``KillMode=control-group`` and ``kill -- -PGID`` signal the
    whole process group; a child dying first would look like a crash ("decoding ended early", a dead
    worker, shared memory the resource tracker reports as leaked, issue 13 item 5). A child still ends
    when its parent goes away: its pipe closes (``_Exit``)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def is_neighbour(offset_ms: int, cut_ms: int, by_ms: int) -> bool:
    """Whether a sample at ``offset_ms`` is the frame ``by_ms`` (negative: before) from the cut at ``cut_ms``.
    Offsets are whole ms rounded from the grid's times, so the two sides of a sum may differ by one."""
    return abs(offset_ms - (cut_ms + by_ms)) <= 1


class _NeighbourWriter:
    """Puts each cut's neighbour frames (:class:`Sides`) into the cut's own slot, after its views.

    Samples arrive in time order: the frame ``ms`` before a cut comes first and is kept converted until the
    cut's slot exists; the cut's :class:`FrameReady` waits for the frame ``ms`` after it (or for any later
    sample, or the end, when that frame does not exist). The grid is at least ``ms`` wide (the coordinator asks
    for neighbours only then), so at most one cut is waiting."""

    def __init__(self, sides: Sides, conv: Converter, ring: FrameRing, n_main: int) -> None:
        self.ms, self.conv, self.ring, self.n_main = sides.ms, conv, ring, n_main
        self.n = len(sides.specs)
        self.before: tuple[int, list] | None = None  # (offset, converted renditions) of the last side sample
        self.waiting: tuple[int, int, int] | None = None  # (slot, seq, offset) of the cut waiting for its after

    def shapes(self) -> list[tuple[int, int, int]]:
        return self.conv.shapes() * 2

    def side_sample(self, item: Sample) -> list | None:
        """The sample's renditions when it is some cut's neighbour."""
        if not item.wanted & SIDE:
            return None
        self.conv = self.conv.follow(item.frame)
        return self.conv.convert(item.frame)

    def resolve(self, item: Sample, views: list | None) -> tuple[int, int, int] | None:
        """The waiting cut, ready to post, once ``item`` is at or past its after-frame (filled in if it is it)."""
        if self.waiting is None:
            return None
        slot, seq, cut = self.waiting
        if item.offset_ms < cut + self.ms - 1:
            return None
        if views is not None and is_neighbour(item.offset_ms, cut, self.ms) and self._fits(slot, views):
            self._copy(slot, 1, views)
            self.ring.add_flags(slot, SIDE_AFTER)
        self.waiting = None
        return slot, seq, cut

    def cut(self, slot: int, seq: int, offset_ms: int) -> int:
        """A cut was written to ``slot``: add its before-frame; returns the flags to set."""
        self.waiting = (slot, seq, offset_ms)
        if self.before is not None and is_neighbour(self.before[0], offset_ms, -self.ms) \
                and self._fits(slot, self.before[1]):
            self._copy(slot, 0, self.before[1])
            return SIDE_BEFORE
        return 0

    def remember(self, item: Sample, views: list | None) -> None:
        if views is not None:
            self.before = (item.offset_ms, views)

    def _fits(self, slot: int, views: list) -> bool:
        dest = self.ring.views(slot)[self.n_main:self.n_main + self.n]
        return all(d.shape == v.shape for d, v in zip(dest, views))  # a resize mid-file: that side is left out

    def _copy(self, slot: int, which: int, views: list) -> None:
        start = self.n_main + which * self.n
        for dest, v in zip(self.ring.views(slot)[start:start + self.n], views):
            dest[...] = v


class Decoder:
    """The decoder process's state: the slots granted, the jobs queued and the ones told to stop."""

    def __init__(self, conn: Connection, ring: FrameRing, source_options: dict[str, str] | None) -> None:
        self.chan = decoder_side(conn)
        self.ring = ring
        self.source_options = source_options
        self.granted: deque[int] = deque()
        self.stopped: set[int] = set()
        self.jobs: deque[DecodeJob] = deque()

    # -- messages ---------------------------------------------------------------------------------------
    def handle(self, msg: object) -> None:
        if isinstance(msg, GrantSlots):
            self.granted.extend(msg.slots)
        elif isinstance(msg, StopJob):
            self.stopped.add(msg.key)
        elif isinstance(msg, DecodeJob):
            self.jobs.append(msg)
        elif isinstance(msg, Exit):
            raise _Exit

    def drain(self, block: bool) -> None:
        while block or self.chan.poll():
            self.handle(self.chan.recv())
            block = False

    def run(self) -> None:
        while True:
            if not self.jobs:
                self.drain(block=True)
                continue
            self.run_job(self.jobs.popleft())

    # -- one job ----------------------------------------------------------------------------------------
    def open(self, job: DecodeJob) -> tuple[Source, OpenedVideo]:
        source = source_for(job.uri, job.timeout, self.source_options)
        video = source.open()
        try:
            if job.max_duration and video.duration is not None and video.duration > job.max_duration:
                raise VideoTooLong(job.max_duration, detail=f"{video.duration:.0f} s")
        except BaseException:
            video.close()
            raise
        return source, video

    def next_slot(self, key: int) -> int | None:
        """A granted slot, waiting for one if needed; None once the job is stopped."""
        while not self.granted and key not in self.stopped:
            self.drain(block=True)
        return None if key in self.stopped else self.granted.popleft()

    def decode(self, job: DecodeJob, source: Source, video: OpenedVideo) -> int:
        """Sample the video into slots; returns how many frames were posted."""
        key = job.key
        conv = Converter(job.specs, video.width, video.height)
        shapes = conv.shapes()
        self.ring.layout(shapes)  # fail early if the renditions don't fit a slot
        self.chan.send(VideoMeta(key, None if video.duration is None else int(video.duration * 1000),
                                 video.width, video.height))

        # an endless source ends at max_duration of media time past ss, and of wall time (CONTRACT §11;
        # issue 10: a looped stream ran until killed); max_frames is applied by the sampler
        deadline = time.monotonic() + job.max_duration if job.max_duration else math.inf
        last_ms = (job.sampling.ss + job.max_duration) * 1000 if job.max_duration else math.inf

        def should_stop() -> bool:
            self.drain(block=False)
            if time.monotonic() > deadline and key not in self.stopped:
                log.warning("job %s: decoding stopped after max_duration (%s s) of wall time", key, job.max_duration)
                self.stopped.add(key)
            return key in self.stopped

        sides = None
        if job.sides is not None and job.sides.specs:
            sides = _NeighbourWriter(job.sides, Converter(job.sides.specs, video.width, video.height), self.ring,
                                     len(shapes))
            self.ring.layout(shapes + sides.shapes())
        count = 0
        try:
            for item in frames(video, job.sampling, should_stop, max_frames=job.max_frames,
                               frame_threads=job.frame_threads, reopen=source.open,
                               neighbours_ms=sides.ms if sides is not None else 0):
                if item.offset_ms > last_ms:
                    log.warning("job %s: decoding stopped at max_duration (%s s) of media time", key, job.max_duration)
                    break
                side_views = sides.side_sample(item) if sides is not None else None
                if sides is not None:
                    ready = sides.resolve(item, side_views)
                    if ready is not None:
                        self.chan.send(FrameReady(ready[0], key, ready[1], ready[2]))
                if item.wanted & OPS:
                    slot = self.next_slot(key)
                    if slot is None:
                        break
                    new = conv.follow(item.frame)  # the display matrix is on the frames, not on the stream
                    if new is not conv:
                        conv, shapes = new, new.shapes()
                    extra = sides.shapes() if sides is not None else []
                    self.ring.write_meta(slot, job=key, seq=count, offset_ms=item.offset_ms, src=conv.display,
                                         shapes=shapes + extra)
                    conv.convert_into(item.frame, self.ring.views(slot)[:len(shapes)])
                    if sides is not None:
                        self.ring.add_flags(slot, sides.cut(slot, count, item.offset_ms))
                    else:
                        self.chan.send(FrameReady(slot, key, count, item.offset_ms))
                    count += 1
                if sides is not None:
                    sides.remember(item, side_views)  # after the cut: its own before-frame came earlier
        except _Exit:
            raise
        except BaseException:
            self._post_waiting(key, sides)  # DecodeDone counts that cut: the parent waits for it
            raise
        self._post_waiting(key, sides)  # the last cut has no frame after it, or decoding stopped
        return count

    def _post_waiting(self, key: int, sides: "_NeighbourWriter | None") -> None:
        if sides is not None and sides.waiting is not None:
            slot, seq, cut = sides.waiting
            sides.waiting = None
            self.chan.send(FrameReady(slot, key, seq, cut))

    def run_job(self, job: DecodeJob) -> None:
        self.stopped.discard(job.key)
        if job.live is not None:
            self.run_live_job(job)
            return
        count = 0
        error: ErrorWire | None = None
        video = None
        try:
            source, video = self.open(job)
            count = self.decode(job, source, video)
            if count == 0 and job.key not in self.stopped and source.nothing_decodable():
                error = to_wire(CannotOpen(detail="no decodable frame"))
        except (ArgusError, MemoryError) as exc:
            error = to_wire(map_av_error(exc))
        except _Exit:
            raise
        except Exception as exc:  # FFmpeg errors mid-stream
            if count == 0:
                error = to_wire(map_av_error(exc))
            else:
                log.warning("decoding ended early after %d frames: %s: %s", count, type(exc).__name__, exc)
        finally:
            if video is not None:
                video.close()
        # Hand unused slots back so an idle decoder does not sit on ring capacity.
        returned = list(self.granted)
        self.granted.clear()
        self.chan.send(DecodeDone(job.key, count, error, returned))


    # -- one live job (issue 12) ------------------------------------------------------------------------
    def run_live_job(self, job: DecodeJob) -> None:
        """Sample a live source until the parent stops the job, ``live.timeout`` passes without a frame, or the
        operator's maximum duration: reconnecting on any error (:func:`argus_core.media.live.live_samples`)."""
        key, plan = job.key, job.live
        assert plan is not None
        try:
            require_protocol(job.uri)  # Engine.check refuses these at submit; a request checked elsewhere may not be
            source = source_for(job.uri, job.timeout, self.source_options, live=True, stall_s=plan.stall_s)
        except ArgusError as exc:  # a URI no reconnect can help (e.g. a protocol this FFmpeg lacks)
            returned = list(self.granted)
            self.granted.clear()
            self.chan.send(DecodeDone(key, 0, to_wire(exc), returned))
            return
        assert isinstance(source, LiveSource)
        clock = LiveClock(start_ms=plan.start_ms)
        started = time.monotonic()
        state = {"last_frame": started, "count": 0, "why": "", "reconnects": 0, "sent": 0.0,
                 "connected": False, "at": None, "lag": None, "offset": None, "pts": None}

        def status(reason: str = "") -> None:
            state["sent"] = time.monotonic()
            self.chan.send(LiveStatus(key, state["connected"], state["reconnects"], state["at"], state["lag"],
                                      reason, state["offset"], state["pts"]))

        def on_event(ev: livemod.LiveEvent) -> None:
            if isinstance(ev, livemod.Connected):
                state["connected"], state["reconnects"] = True, ev.reconnects
                status()
            elif isinstance(ev, livemod.Disconnected):
                state["connected"] = False
                status(ev.reason)
            elif isinstance(ev, livemod.Discontinuity):
                self.chan.send(LiveBreak(key, state["count"], ev.offset_ms, ev.reason))
            elif isinstance(ev, livemod.Frame):
                state["lag"] = ev.lag_ms
            elif isinstance(ev, livemod.Decoded):
                state["last_frame"] = time.monotonic()  # live.timeout: seconds without a frame from the source

        def should_stop() -> bool:
            self.drain(block=False)
            if key in self.stopped:
                return True
            now = time.monotonic()
            if plan.timeout_s and now - state["last_frame"] > plan.timeout_s:
                state["why"] = f"no frame for {plan.timeout_s:g} s"
                return True
            if plan.max_s and now - started > plan.max_s:
                state["why"] = f"maximum live duration {plan.max_s:g} s"
                return True
            return False

        conv: Converter | None = None
        error: ErrorWire | None = None
        try:
            for item in livemod.live_samples(source, job.sampling, should_stop, clock, on_event):
                new = (Converter(job.specs, item.frame.width, item.frame.height, item.frame.rotation)
                       if conv is None else conv.follow(item.frame))
                if new is not conv:  # a reconnect may bring another resolution or orientation
                    conv = new
                    shapes = conv.shapes()
                    self.ring.layout(shapes)
                    self.chan.send(VideoMeta(key, None, *conv.display))
                slot = self.next_slot(key)
                if slot is None:
                    break
                self.ring.write_meta(slot, job=key, seq=state["count"], offset_ms=item.offset_ms, src=conv.display,
                                     shapes=shapes)
                conv.convert_into(item.frame, self.ring.views(slot))
                self.chan.send(FrameReady(slot, key, state["count"], item.offset_ms))
                state["count"] += 1
                state["at"], state["offset"] = time.time(), item.offset_ms
                pts, tb = item.frame.pts, item.frame.time_base
                state["pts"] = None if pts is None or tb is None else int(round(float(pts * tb) * 1000))
                if time.monotonic() - state["sent"] >= 1.0:
                    status()
        except _Exit:
            raise
        except (ArgusError, MemoryError) as exc:
            error = to_wire(map_av_error(exc))
        if error is None and state["count"] == 0 and key not in self.stopped:
            error = to_wire(VideoNotFound(detail=f"no frame from the live source ({state['why'] or 'stopped'})"))
        if state["why"]:
            log.info("live job %s ended: %s after %d frames", key, state["why"], state["count"])
        returned = list(self.granted)
        self.granted.clear()
        self.chan.send(DecodeDone(key, state["count"], error, returned))


def decoder_main(conn: Connection, ring_name: str, slots: int, slot_bytes: int,
                 source_options: dict[str, str] | None = None) -> None:
    """Process entry point. ``source_options``: extra FFmpeg options for network sources."""
    child_setup()
    if source_options and source_options.get("http_proxy"):
        # FFmpeg reads no_proxy from the environment even when given http_proxy: hosts listed there
        # (metadata addresses, cluster-internal names) would be fetched around the checking proxy.
        for var in ("no_proxy", "NO_PROXY"):
            os.environ.pop(var, None)
    ring = FrameRing.attach(ring_name, slots, slot_bytes)
    try:
        Decoder(conn, ring, source_options).run()
    except (_Exit, EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        ring.close()
