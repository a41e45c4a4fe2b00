"""Live streams (issue 12), the "Must show" figures: real ``ffmpeg`` publishers on loopback, the real engine
(``pulp``, ``vframe`` mode 0 every 1 s, ``segment`` mode 1 with 1 s windows so a segment closes every second).

    cd <repo> && flock /tmp/argus-bench.lock python -m bench.bench_live [--quick] [--only latency,reconnect,...]

Parts (``--only``; all by default), each printed as a markdown table and written to ``--json``:

``latency``   segment callback latency per protocol (RTMP, RTSP pushed to the listening engine, HTTP-TS, HLS, SRT):
              the arrival time of each
              ``SegmentClosed`` event − the publish time of the segment's last frame. The publisher is
              :class:`bench._live_pub.PacedPublisher` (our own real-time writer into ``ffmpeg -c copy``'s stdin, so
              the publish time of every frame is measured, not inferred); a pts jump every ``--marker-every``
              s pins the engine's offsets to our pts (see that module). Two definitions are reported:
              *window* — the last frame of the segment's window ``[begin, begin + 1 s)``: what the callback
              waits for by design (the window is over only once a frame after it is seen); *cut* — the
              frame sampled for the segment's last cut (one window earlier: includes that 1 s wait).
              ``floor``: a bare PyAV reader of the same publisher, what the publisher + FFmpeg + loopback
              cost before the engine does anything.
``reconnect`` first frame after the publisher comes back: publisher killed, restarted ``N`` s later, time from
              the restart to the engine's ``reconnect`` Discontinuity event (sent with the first frame of the
              new connection); a fresh job per trial, so each is the job's first outage (backoff 1, 2, 4 … s).
``stall``     publisher SIGSTOPped (its TCP connection stays open): time to the ``LiveStatus(connected=False)``.
``drift``     one long RTMP run: ``LiveStatus`` reports (``last_frame_at`` epoch A, offset O, lag L); the slope of
              A − O/1000 (the engine's offsets against wall time) and of L (against its own job clock), as ms
              per 10 minutes; plus the publish-side check that every frame left the engine after it was
              published.
``streams``   N concurrent 720p streams (bigbuckbunny, ``-stream_loop -1 -re -c copy`` RTMP publishers) at 1
              frame/s with one inference worker and N decoders: lag growth, frames received, CPU seconds of the
              engine (this process + its decoder/worker children, from /proc; publishers excluded) per stream
              per second; N doubles until the lag is not bounded.

Every job's cut offsets are checked strictly increasing (``backward_or_duplicate`` counts violations).
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import json
import math
import os
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from argus_core import Engine
from argus_core.events import Discontinuity, JobFinished, LiveStatus, SegmentClosed
from bench._live_pub import Clip, FrameMap, PacedPublisher
from tests.live_publishers import (DirServer, Publisher, free_port, http_ts_args, rtmp_args, rtsp_push_args, srt_args,
                                   start_until_running)

WINDOW_MS = 1000
#: segments after a marker left out of the "steady" figure: an 8 s pts jump is no real stream's behaviour, and
#: through HLS it costs a few seconds (FFmpeg's HLS muxer cuts a long segment at the jump; the engine then
#: catches up one segment a second)
SETTLE_SEGMENTS = 6
INTERVAL_S = 1.0


def request(uri: str, interval: float = INTERVAL_S, window_s: float = WINDOW_MS / 1000, **live: Any) -> dict:
    return {"data": {"uri": uri},
            "params": {"vframe": {"mode": 0, "interval": interval}, "live": live,
                       "segment": {"mode": 1, "interval": window_s}},
            "ops": [{"op": "pulp"}]}


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, math.ceil(p / 100 * len(s)) - 1))  # nearest rank
    return s[k]


def fmt(x: float | None, unit: str = "s", nd: int = 2) -> str:
    return "–" if x is None else f"{x:.{nd}f} {unit}".strip()


class Watch:
    """A live job's events with their arrival time (monotonic), read on a thread as they come."""

    def __init__(self, job: Any) -> None:
        self.job = job
        self.events: list[tuple[float, Any]] = []
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for ev in self.job.events(timeout=None):
            with self.cond:
                self.events.append((time.monotonic(), ev))
                self.cond.notify_all()
            if isinstance(ev, JobFinished):
                return

    def wait_for(self, pred: Callable[[float, Any], bool], timeout: float, since: int = 0) -> tuple[float, Any] | None:
        """The first event from index ``since`` on with ``pred(arrival, event)``, or None after ``timeout`` s."""
        end = time.monotonic() + timeout
        i = since
        with self.cond:
            while True:
                while i < len(self.events):
                    t, ev = self.events[i]
                    i += 1
                    if pred(t, ev):
                        return t, ev
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def cuts(self, since: int = 0) -> int:
        return sum(len(ev.segment.cuts) for _, ev in self.events[since:] if isinstance(ev, SegmentClosed))

    def finish(self, timeout: float = 30.0) -> list[tuple[float, Any]]:
        self.job.cancel()
        self.thread.join(timeout)
        return self.events


def offsets_violations(events: list[tuple[float, Any]]) -> int:
    offs = [c.offset for _, ev in events if isinstance(ev, SegmentClosed) for c in ev.segment.cuts]
    return sum(1 for a, b in zip(offs, offs[1:]) if b <= a)


# -- footage -------------------------------------------------------------------------------------------
def latency_clip(tmp: Path) -> Path:
    """4 s of real photos (scikit-image's), 320×180, 25 fps, a closed GOP per second — as MPEG-TS."""
    from tests.videos import photo_video

    mp4 = photo_video(tmp / "clip.mp4", per_photo=0.8, gop=25, w=320, h=180)
    ts = tmp / "clip.ts"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(mp4), "-c", "copy", "-f", "mpegts", str(ts)],
                   check=True)
    return ts


def clip_720p() -> Path:
    from tests.data import footage

    return footage("bigbuckbunny")  # 1280×720, 25 fps, 5.3 s, H.264 + AAC


# -- publishers ------------------------------------------------------------------------------------------
@dataclass
class Live:
    """One protocol's paced publisher and the URL the engine reads."""

    name: str
    pub: PacedPublisher
    url: str
    server: DirServer | None = None
    #: what the publisher's muxer adds to our pts (s), when the engine's offsets are mapped through the
    #: ``source_pts_ms`` its LiveStatus reports instead of through markers (HLS: see :func:`paced`)
    pts_shift: float | None = None

    def close(self) -> None:
        self.pub.kill()
        if self.server is not None:
            self.server.close()


def paced(proto: str, clip: Clip, tmp: Path, marker_every: float, markers: list[float] = ()) -> Live:
    log = tmp / f"pub-{proto}-{time.monotonic_ns()}.log"
    if proto == "rtmp":
        url = f"rtmp://127.0.0.1:{free_port()}/live/x"
        out = ["-f", "flv", "-listen", "1", url]
    elif proto == "http-ts":
        url = f"http://127.0.0.1:{free_port()}/live.ts"
        out = ["-f", "mpegts", "-listen", "1", url]
    elif proto == "rtsp":  # pushed to the engine listening (FFmpeg's RTSP muxer has no server mode)
        url = f"rtsp://127.0.0.1:{free_port()}/live"
        out = ["-f", "rtsp", "-rtsp_transport", "tcp", url]
        return Live(proto, PacedPublisher(clip, out, log, markers=list(markers), marker_every=marker_every), url)
    elif proto == "srt":  # read through the ffmpeg CLI relay where PyAV has no libsrt (media/relay.py)
        port = free_port()
        out = ["-f", "mpegts", f"srt://127.0.0.1:{port}?mode=listener"]
        url = f"srt://127.0.0.1:{port}?mode=caller"
    elif proto == "hls":
        d = Path(tempfile.mkdtemp(dir=tmp, prefix="hls-"))
        out = ["-f", "hls", "-hls_time", "1", "-hls_list_size", "6", "-hls_flags", "delete_segments",
               str(d / "live.m3u8")]
        srv = DirServer(d)
        pub = PacedPublisher(clip, out, log, markers=list(markers), marker_every=marker_every).start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # a live playlist with a few segments, as a viewer would find it
            pl = d / "live.m3u8"
            if pl.is_file() and pl.read_text().count("#EXTINF") >= 3:
                break
            time.sleep(0.1)
        return Live(proto, pub, f"http://127.0.0.1:{srv.port}/live.m3u8", srv, hls_shift(d, pub))
    else:
        raise ValueError(proto)
    pub = PacedPublisher(clip, out, log, markers=list(markers), marker_every=marker_every).start()
    # FFmpeg listens once it has probed its input (~0.5 s of media, written in real time): no test connect,
    # a `-listen 1` publisher serves one client only
    time.sleep(1.5)
    return Live(proto, pub, url)


def hls_shift(d: Path, pub: PacedPublisher) -> float:
    """What FFmpeg's HLS muxer adds to the pts it is given (1.4 s here: its MPEG-TS muxer's default delay,
    even with ``-copyts``): the first segment's first packet, in decode order, is the first frame we wrote.

    HLS latency is mapped with this instead of markers: a marker's 8 s pts jump makes the muxer write a 9 s
    segment, the demuxer then waits that long before its next reload, the segments in between expire, and
    the engine's first frame after the jump is not the marker's (the old figures, 4.3–4.8 s "steady", were
    that mismatch)."""
    import av

    first = sorted(d.glob("live*.ts"), key=lambda p: int("".join(c for c in p.stem if c.isdigit()) or 0))[0]
    with av.open(str(first)) as c:
        s = c.streams.video[0]
        pkt = next(p for p in c.demux(s) if p.pts is not None)
        return round(float(pkt.pts * s.time_base) - pub.log.pts_s[0], 4)


def live_extra(proto: str) -> dict:
    return {"timeout": 60} if proto != "rtmp" else {}


# -- 1. segment callback latency -----------------------------------------------------------------------
def segment_latencies(events: list[tuple[float, Any]], live: Live) -> dict[str, Any]:
    """Per closed segment: arrival − publish time of its window's last frame / of its last cut's frame."""
    jumps = live.pub.log.jumps
    fmap: FrameMap | None = None
    win, cut, steady = [], [], []
    skipped = 0
    since_marker = 0
    for i, (t, ev) in enumerate(events):
        if isinstance(ev, LiveStatus) and live.pts_shift is not None and fmap is None and \
                ev.source_pts_ms is not None and ev.offset_ms is not None:
            fmap = FrameMap(live.pub.log, ev.source_pts_ms / 1000 - live.pts_shift, ev.offset_ms)
            since_marker = 0
        elif isinstance(ev, Discontinuity):
            fmap = None
            if ev.reason == "pts jump" and live.pts_shift is None:
                # the marker the engine just saw: the last one published before this event arrived
                cands = [j for j in jumps if j[1] <= t and t - j[1] < 15.0]
                if cands:
                    fmap = FrameMap(live.pub.log, cands[-1][0], ev.offset_ms)
                    since_marker = 0
        elif isinstance(ev, SegmentClosed):
            nxt = events[i + 1][1] if i + 1 < len(events) else None
            if fmap is None or isinstance(nxt, (Discontinuity, JobFinished)) or not ev.segment.cuts:
                skipped += 1  # no mapping yet, or closed early by a break / the end: its window did not end
                continue
            w = fmap.last_before(ev.segment.offset_begin + WINDOW_MS)
            c = fmap.last_before(ev.segment.cuts[-1].offset + 1)
            if w is None or c is None:
                skipped += 1
                continue
            win.append(t - w[1])
            cut.append(t - c[1])
            since_marker += 1
            if since_marker > SETTLE_SEGMENTS:
                steady.append(t - w[1])
    return {"n": len(win), "skipped": skipped, "window": win, "cut": cut, "steady": steady}


def floor_latency(proto: str, clip: Clip, tmp: Path, seconds: float) -> list[float]:
    """A bare PyAV reader of the same publisher: the latency before the engine does anything."""
    import av

    live = paced(proto, clip, tmp, marker_every=0)
    out: list[float] = []
    try:
        for attempt in range(20):
            try:
                c = av.open(live.url, timeout=(15, 10))
                break
            except av.error.ConnectionRefusedError:
                time.sleep(0.25)
        else:
            return []
        s = c.streams.video[0]
        tb = float(s.time_base)
        pts_l, wall_l = live.pub.log.sorted()
        t_end = time.monotonic() + seconds
        for pkt in c.demux(s):
            now = time.monotonic()
            if now > t_end:
                break
            if pkt.pts is None:
                continue
            p = pkt.pts * tb
            if len(pts_l) < 10 or p > pts_l[-1] - 0.5:
                pts_l, wall_l = live.pub.log.sorted()
            j = bisect.bisect_left(pts_l, p - 5e-4)
            if j < len(pts_l) and abs(pts_l[j] - p) < 2e-3:
                out.append(now - wall_l[j])
        c.close()
    finally:
        live.close()
    return out[len(out) // 3:]  # after the start-up burst


def push_until_running(pub: PacedPublisher, settle: float = 0.7, timeout: float = 20.0) -> None:
    """Start a publisher that pushes to the listening engine until it stays up (refused while the engine's
    reader is not yet listening); each try starts a fresh publish log."""
    from bench._live_pub import PublishLog

    deadline = time.monotonic() + timeout
    while True:
        pub.log = PublishLog()
        pub.error = None
        pub.start()
        time.sleep(settle)
        assert pub.proc is not None
        if pub.proc.poll() is None:
            return
        pub.kill()
        assert time.monotonic() < deadline, "the RTSP publisher never connected"


def run_latency(engines: Callable[[str], Engine], tmp: Path, seconds: float, marker_every: float,
                protos: list[str], floor_s: float = 12.0) -> dict:
    clip = Clip.load(latency_clip(tmp))
    res: dict[str, Any] = {}
    for proto in protos:
        # a marker at the first loop boundary (4 s) maps the run early; more every `marker_every` s re-map it
        # after a reconnect. HLS has none: it is mapped through the engine's source_pts_ms (see hls_shift)
        live = paced(proto, clip, tmp, marker_every=marker_every if proto != "hls" else 0.0,
                     markers=[4.0] if proto != "hls" else [])
        try:
            w = Watch(engines(proto).submit(request(live.url, **live_extra(proto))))
            if proto == "rtsp":
                push_until_running(live.pub)
            time.sleep(seconds)
            events = w.finish()
        finally:
            live.close()
        lat = segment_latencies(events, live)
        floor = floor_latency(proto, clip, tmp, floor_s) if proto not in ("hls", "srt", "rtsp") and floor_s > 0 else []
        res[proto] = {"segments": lat["n"], "skipped": lat["skipped"],
                      "window_p50": pct(lat["window"], 50), "window_p95": pct(lat["window"], 95),
                      "window_max": max(lat["window"], default=None),
                      "steady_p50": pct(lat["steady"], 50), "steady_p95": pct(lat["steady"], 95),
                      "steady_n": len(lat["steady"]),
                      "cut_p50": pct(lat["cut"], 50), "cut_p95": pct(lat["cut"], 95),
                      "floor_p50": pct(floor, 50), "floor_p95": pct(floor, 95),
                      "min": min(lat["window"], default=None),
                      "backward_or_duplicate": offsets_violations(events),
                      "reconnects": sum(1 for _, e in events if isinstance(e, Discontinuity) and e.reason == "reconnect"),
                      "publisher_error": repr(live.pub.error) if live.pub.error else None,
                      "window_series": [round(x, 3) for x in lat["window"]]}
        print(f"  latency {proto}: {res[proto]}", flush=True)
    return res


# -- 2. reconnect and stall --------------------------------------------------------------------------
def _plain(proto: str, clip: Path, tmp: Path) -> tuple[Publisher, str]:
    args, url = {"rtmp": rtmp_args, "srt": srt_args, "rtsp": rtsp_push_args}.get(proto, http_ts_args)(clip, free_port())
    return Publisher(args, tmp / f"plain-{proto}-{time.monotonic_ns()}.log"), url


def run_reconnect(engines: Callable[[str], Engine], tmp: Path, protos: list[str], downs: list[float]) -> dict:
    from tests.videos import photo_video

    clip = photo_video(tmp / "clip.mp4", per_photo=0.8, gop=25, w=320, h=180)
    res: dict[str, Any] = {}
    for proto in protos:
        trials = []
        for down in downs:
            pub, url = _plain(proto, clip, tmp)
            push = proto == "rtsp"  # pushed to the listening engine: started (and restarted) once it listens
            if not push:
                pub.start()
                time.sleep(0.3)
            w = Watch(engines(proto).submit(request(url, **live_extra(proto))))
            if push:
                start_until_running(pub)
            try:
                ok = w.wait_for(lambda t, e: w.cuts() >= 2, 30)
                if ok is None:
                    trials.append({"down_s": down, "first_frame_s": None, "why": "no frames before the fault"})
                    continue
                pub.kill()
                time.sleep(down)
                k = len(w.events)
                t_up = time.monotonic()  # a pushing publisher is back from its first try on
                start_until_running(pub, settle=0.2, timeout=30) if push else pub.start()
                got = w.wait_for(lambda t, e: isinstance(e, Discontinuity) and e.reason == "reconnect", 60, since=k)
                first = None if got is None else got[0] - t_up
                # split: waiting for the next reconnect try (backoff) vs opening + probing + the first frame
                conn = next((t for t, e in w.events[k:] if isinstance(e, LiveStatus) and e.connected), None)
                trials.append({"down_s": down, "first_frame_s": first,
                               "connected_after_s": None if conn is None else conn - t_up,
                               "connect_to_frame_s": None if conn is None or got is None else got[0] - conn})
            finally:
                events = w.finish()
                pub.kill()
            trials[-1]["backward_or_duplicate"] = offsets_violations(events)
            print(f"  reconnect {proto}: {trials[-1]}", flush=True)
        firsts = [t["first_frame_s"] for t in trials if t["first_frame_s"] is not None]
        res[proto] = {"trials": trials, "p50": pct(firsts, 50), "p95": pct(firsts, 95), "max": max(firsts, default=None),
                      "missed": sum(1 for t in trials if t["first_frame_s"] is None)}
    return res


def run_stall(engines: Callable[[str], Engine], tmp: Path, protos: list[str], trials: int) -> dict:
    from tests.videos import photo_video

    clip = photo_video(tmp / "clip.mp4", per_photo=0.8, gop=25, w=320, h=180)
    pclip = Clip.load(latency_clip(tmp))
    res: dict[str, Any] = {}
    for proto in protos:
        out = []
        for _ in range(trials):
            if proto == "hls":
                live = paced("hls", pclip, tmp, marker_every=0)
                pub, url, close = live.pub.proc, live.url, live.close
            else:
                p, url = _plain(proto, clip, tmp)
                if proto != "rtsp":
                    p.start()
                    time.sleep(0.3)
                close = p.kill
            w = Watch(engines(proto).submit(request(url, **live_extra(proto))))
            if proto == "rtsp":
                start_until_running(p)  # pushed to the listening engine
            if proto != "hls":
                pub = p.proc
            try:
                if w.wait_for(lambda t, e: w.cuts() >= 2, 30) is None:
                    out.append({"detected_s": None, "why": "no frames before the fault"})
                    continue
                k = len(w.events)
                os.kill(pub.pid, 19)  # SIGSTOP
                t_stop = time.monotonic()
                got = w.wait_for(lambda t, e: isinstance(e, LiveStatus) and not e.connected, 60, since=k)
                out.append({"detected_s": None if got is None else got[0] - t_stop,
                            "reason": None if got is None else got[1].reason})
                os.kill(pub.pid, 18)  # SIGCONT
            finally:
                events = w.finish()
                close()
            out[-1]["backward_or_duplicate"] = offsets_violations(events)
            print(f"  stall {proto}: {out[-1]}", flush=True)
        ds = [t["detected_s"] for t in out if t["detected_s"] is not None]
        res[proto] = {"trials": out, "p50": pct(ds, 50), "max": max(ds, default=None)}
    return res


# -- 3. clock drift --------------------------------------------------------------------------------------
def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def run_drift(engine: Engine, tmp: Path, seconds: float) -> dict:
    clip = Clip.load(latency_clip(tmp))
    live = paced("rtmp", clip, tmp, marker_every=0, markers=[4.0])  # one marker: maps the whole connection
    mono_minus_epoch = time.monotonic() - time.time()
    try:
        w = Watch(engine.submit(request(live.url)))
        time.sleep(seconds)
        events = w.finish()
    finally:
        live.close()
    st = [(t, e) for t, e in events if isinstance(e, LiveStatus) and e.connected and e.offset_ms is not None
          and e.last_frame_at is not None and e.lag_ms is not None]
    # after the start-up burst (the publisher's backlog while the engine connected) and the marker
    jump_at = next((i for i, (t, e) in enumerate(events) if isinstance(e, Discontinuity)), None)
    t_jump = events[jump_at][0] if jump_at is not None else 0.0
    st = [(t, e) for t, e in st if t > t_jump + 2.0]
    xs = [e.last_frame_at for _, e in st]
    a_minus_o = [e.last_frame_at - e.offset_ms / 1000 for _, e in st]
    lag = [e.lag_ms / 1000 for _, e in st]
    res: dict[str, Any] = {"seconds": seconds, "statuses": len(st),
                           "backward_or_duplicate": offsets_violations(events),
                           "discontinuities": [e.reason for _, e in events if isinstance(e, Discontinuity)]}
    if len(st) >= 10:
        span = xs[-1] - xs[0]
        s1, s2 = slope(xs, a_minus_o), slope(xs, lag)
        res.update(span_s=span, wall_vs_offset_ms_per_10min=s1 * 600_000, lag_ms_per_10min=s2 * 600_000,
                   wall_vs_offset_spread_ms=(max(a_minus_o) - min(a_minus_o)) * 1000,
                   end_minus_start_ms=(statistics.fmean(a_minus_o[-5:]) - statistics.fmean(a_minus_o[:5])) * 1000)
    # publish side: the frame sent at A was published before A (checks the mapping and causality)
    jd = events[jump_at][1] if jump_at is not None else None
    if jd is not None and live.pub.log.jumps:
        fmap = FrameMap(live.pub.log, live.pub.log.jumps[0][0], jd.offset_ms)
        lat = []
        for _, e in st:
            fr = fmap.last_before(e.offset_ms + 1)
            if fr is not None:
                lat.append(e.last_frame_at + mono_minus_epoch - fr[1])
        if lat:
            res.update(decoder_latency_p50_s=pct(lat, 50), decoder_latency_min_s=min(lat),
                       decoder_latency_max_s=max(lat),
                       decoder_latency_slope_ms_per_10min=slope(xs[:len(lat)], lat) * 600_000)
    print(f"  drift: {res}", flush=True)
    return res


# -- 4. concurrent 720p streams --------------------------------------------------------------------------
def cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tick  # utime, stime
        except (OSError, IndexError):
            pass
    return total


def run_streams(tmp: Path, seconds: float, warm: float, counts: list[int], workers: int,
                slots: int | None = None) -> dict:
    clip = clip_720p()
    res: dict[str, Any] = {}
    for n in counts:
        pubs = []
        with Engine(decoders=n, workers=workers, ops=["pulp"], slots=slots) as engine:
            pids = [os.getpid(), *engine.child_pids()["decoders"], *engine.child_pids()["workers"]]
            watches = []
            try:
                for _ in range(n):
                    p, url = _plain("rtmp", clip, tmp)
                    p.start()
                    pubs.append(p)
                time.sleep(0.5)
                mono_minus_epoch = time.monotonic() - time.time()
                watches = [Watch(engine.submit(request(_url_of(p)))) for p in pubs]
                time.sleep(warm)
                c0, t0 = cpu_seconds(pids), time.monotonic()
                load0 = os.getloadavg()
                time.sleep(seconds)
                c1, t1 = cpu_seconds(pids), time.monotonic()
                load1 = os.getloadavg()
            finally:
                all_events = [w.finish() for w in watches]
                for p in pubs:
                    p.kill()
        per = []
        for events in all_events:
            st = [(t, e) for t, e in events if isinstance(e, LiveStatus) and e.lag_ms is not None and t0 <= t <= t1]
            cuts = [(t, c.offset) for t, e in events if isinstance(e, SegmentClosed) and t0 <= t <= t1
                    for c in e.segment.cuts]
            # segment lag on the job clock: arrival − offset, the job clock read from LiveStatus (A ↔ O + L)
            zero = [e.last_frame_at + mono_minus_epoch - (e.offset_ms + e.lag_ms) / 1000 for _, e in st
                    if e.last_frame_at is not None and e.offset_ms is not None]
            z = statistics.median(zero) if zero else None
            seg_lag = [t - z - off / 1000 for t, off in cuts] if z is not None else []
            third = max(1, len(seg_lag) // 3)
            growth = (statistics.fmean(seg_lag[-third:]) - statistics.fmean(seg_lag[:third])) if seg_lag else None
            per.append({"cuts": len(cuts), "lag_max_s": max((e.lag_ms for _, e in st), default=0) / 1000,
                        "seg_lag_p50_s": pct(seg_lag, 50), "seg_lag_max_s": max(seg_lag, default=None),
                        "seg_lag_growth_s": growth, "backward_or_duplicate": offsets_violations(events),
                        # for a stream that falls silent: what its connection said (undiagnosed at 8 streams)
                        "statuses": len([e for _, e in events if isinstance(e, LiveStatus)]),
                        "reasons": sorted({str(e.reason).split(" [Errno")[0] for _, e in events
                                           if isinstance(e, LiveStatus) and e.reason}),
                        "reconnects": max((e.reconnects for _, e in events if isinstance(e, LiveStatus)), default=0)})
        span = t1 - t0
        growths = [p["seg_lag_growth_s"] for p in per]
        sustained = all(g is not None and g < 1.0 for g in growths) and all(
            p["cuts"] >= 0.85 * span / INTERVAL_S for p in per) and all(
            (p["seg_lag_max_s"] or 99) < 5.0 for p in per)
        res[str(n)] = {"streams": n, "span_s": span, "cpu_s_per_s": (c1 - c0) / span,
                       "cpu_per_stream": (c1 - c0) / span / n, "load": [load0, load1], "sustained": sustained,
                       "cuts_min": min(p["cuts"] for p in per), "expected_cuts": span / INTERVAL_S,
                       "seg_lag_max_s": max((p["seg_lag_max_s"] or 0) for p in per),
                       "seg_lag_growth_max_s": max((g or 0) for g in growths),
                       "backward_or_duplicate": sum(p["backward_or_duplicate"] for p in per), "per_stream": per}
        print(f"  streams {n}: { {k: v for k, v in res[str(n)].items() if k != 'per_stream'} }", flush=True)
        if not sustained:
            break
    return res


def _url_of(p: Publisher) -> str:
    return next(a for a in p.args if a.startswith("rtmp://"))


# -- report ----------------------------------------------------------------------------------------------
def table(out: dict) -> str:
    lines = []
    if "latency" in out:
        lines += ["| protocol | segments | window p50 | window p95 (target) | window max | steady p50 / p95 (n) "
                  "| cut p50 | cut p95 | publisher floor p50 / p95 | backward/dup |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for proto, r in out["latency"].items():
            tgt = "≤ 2 s" if proto == "hls" else "≤ 1 s"
            lines.append(f"| {proto} | {r['segments']} | {fmt(r['window_p50'])} | {fmt(r['window_p95'])} ({tgt}) "
                         f"| {fmt(r['window_max'])} | {fmt(r.get('steady_p50'))} / {fmt(r.get('steady_p95'))} "
                         f"({r.get('steady_n', '–')}) | {fmt(r['cut_p50'])} | {fmt(r['cut_p95'])} "
                         f"| {fmt(r['floor_p50'], 's', 3)} / {fmt(r['floor_p95'], 's', 3)} "
                         f"| {r['backward_or_duplicate']} |")
        lines.append("")
    if "reconnect" in out:
        lines += ["| protocol | trials (down s → first frame s) | p50 | p95 (target ≤ 5 s) | missed |",
                  "|---|---|---|---|---|"]
        for proto, r in out["reconnect"].items():
            tr = ", ".join(f"{t['down_s']:g}→{fmt(t['first_frame_s'], '')}" for t in r["trials"])
            lines.append(f"| {proto} | {tr} | {fmt(r['p50'])} | {fmt(r['p95'])} | {r['missed']} |")
        lines.append("")
    if "stall" in out:
        lines += ["| protocol | stall detected after (s) | max (target ≤ 5 s) | reason |", "|---|---|---|---|"]
        for proto, r in out["stall"].items():
            ds = ", ".join(fmt(t["detected_s"], "") for t in r["trials"])
            reasons = {str(t.get("reason")).split(" [Errno")[0] for t in r["trials"]}  # without the URL
            lines.append(f"| {proto} | {ds} | {fmt(r['max'])} | {'; '.join(str(x) for x in reasons)} |")
        lines.append("")
    if "drift" in out:
        d = out["drift"]
        lines += ["| run | statuses | wall − offset, ms per 10 min | lag, ms per 10 min | wall − offset spread ms "
                  "| decoder latency p50 / min / max s | discontinuities | backward/dup |",
                  "|---|---|---|---|---|---|---|---|",
                  f"| RTMP {d['seconds']:g} s | {d['statuses']} | {fmt(d.get('wall_vs_offset_ms_per_10min'), '', 1)} "
                  f"| {fmt(d.get('lag_ms_per_10min'), '', 1)} | {fmt(d.get('wall_vs_offset_spread_ms'), '', 1)} "
                  f"| {fmt(d.get('decoder_latency_p50_s'), '', 3)} / {fmt(d.get('decoder_latency_min_s'), '', 3)} / "
                  f"{fmt(d.get('decoder_latency_max_s'), '', 3)} | {', '.join(d['discontinuities'])} "
                  f"| {d['backward_or_duplicate']} |", ""]
    if "streams" in out:
        lines += ["| 720p streams | sustained | cuts (min / expected) | segment lag max s | lag growth s "
                  "| engine CPU s/s | CPU per stream | load avg |", "|---|---|---|---|---|---|---|---|"]
        for n, r in out["streams"].items():
            lines.append(f"| {n} | {'yes' if r['sustained'] else 'NO'} | {r['cuts_min']} / {r['expected_cuts']:.0f} "
                         f"| {r['seg_lag_max_s']:.2f} | {r['seg_lag_growth_max_s']:.2f} | {r['cpu_s_per_s']:.2f} "
                         f"| {r['cpu_per_stream']:.3f} | {r['load'][1][0]:.2f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter runs (drift over 2 min, extrapolated)")
    ap.add_argument("--only", default="latency,reconnect,stall,drift,streams")
    ap.add_argument("--protos", default="rtmp,rtsp,http-ts,hls,srt")
    ap.add_argument("--seconds", type=float, default=None, help="latency run per protocol")
    ap.add_argument("--drift-seconds", type=float, default=None)
    ap.add_argument("--stream-seconds", type=float, default=None)
    ap.add_argument("--streams", default="1,2,4,8,16")
    ap.add_argument("--stream-warm", type=float, default=10.0,
                    help="seconds before the streams' measured span (start-up backlog: model load, first connects)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--slots", type=int, default=None, help="the engine's ring slots (default: its own rule)")
    ap.add_argument("--downs", default="1,2,3,4,6")
    ap.add_argument("--floor-seconds", type=float, default=12.0, help="bare-reader baseline per protocol (0: skip)")
    ap.add_argument("--marker-every", type=float, default=20.0)
    ap.add_argument("--json", default="bench/live-results.json")
    ap.add_argument("--source-option", action="append", default=[], metavar="KEY=VALUE",
                    help="an extra FFmpeg option for the engine's live sources (e.g. live_start_index=-2)")
    ap.add_argument("--render", metavar="JSON", help="only print the tables of a saved run")
    a = ap.parse_args(argv)
    if a.render:
        print(table(json.loads(Path(a.render).read_text())))
        return {}
    parts = a.only.split(",")
    protos = a.protos.split(",")
    seconds = a.seconds or (30.0 if a.quick else 90.0)
    src_opts = dict(kv.split("=", 1) for kv in a.source_option)
    out: dict[str, Any] = {"load_start": os.getloadavg(), "argv": argv, "source_options": src_opts}
    with tempfile.TemporaryDirectory(prefix="bench-live-") as td:
        tmp = Path(td)
        if {"latency", "reconnect", "stall", "drift"} & set(parts):
            with Engine(decoders=1, workers=1, ops=["pulp"], source_options=src_opts) as engine, \
                    contextlib.ExitStack() as stack:
                listening: list[Engine] = []

                def engines(proto: str) -> Engine:
                    """RTSP is pushed to the engine: its reader listens (``rtsp_flags=listen``, engine-wide)."""
                    if proto != "rtsp":
                        return engine
                    if not listening:
                        listening.append(stack.enter_context(Engine(
                            decoders=1, workers=1, ops=["pulp"], source_options={**src_opts, "rtsp_flags": "listen"})))
                    return listening[0]

                if "latency" in parts:
                    out["latency"] = run_latency(engines, tmp, seconds, a.marker_every, protos, a.floor_seconds)
                if "reconnect" in parts:
                    out["reconnect"] = run_reconnect(engines, tmp, [p for p in protos if p != "hls"],
                                                     [float(x) for x in a.downs.split(",")])
                if "stall" in parts:
                    out["stall"] = run_stall(engines, tmp, protos, 1 if a.quick else 3)
                if "drift" in parts:
                    out["drift"] = run_drift(engine, tmp, a.drift_seconds or (120.0 if a.quick else 600.0))
        if "streams" in parts:
            out["streams"] = run_streams(tmp, a.stream_seconds or (30.0 if a.quick else 60.0), a.stream_warm,
                                         [int(x) for x in a.streams.split(",")], a.workers, a.slots)
    out["load_end"] = os.getloadavg()
    print(table(out))
    print(f"load average: start {out['load_start']}, end {out['load_end']}")
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
