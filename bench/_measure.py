"""The measurements behind every benchmark: Argus' path and its baseline, timed in the same run.

Each ``*_pair`` / ``*_set`` returns callables (no pytest here) so both the pytest-benchmark suites and
``compare.py`` time exactly the same code. Rules kept everywhere:

- Argus and its baseline run on the same file, in the same process state, interleaved round by round
  (A B A B …), so drift from other jobs on the machine hits both sides alike;
- a result is always a ratio of medians, never an absolute wall-clock limit;
- every run checks it did the same work as its baseline (same frame count / same offsets).
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import av
import msgspec
import numpy as np

HERE = Path(__file__).resolve().parent


# -- timing helpers ---------------------------------------------------------------------------------
def timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def interleave(fns: dict[str, Callable[[], object]], repeats: int, warmup: int = 1,
               cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Run every callable ``warmup + repeats`` times, rotating the order each round; keep the timed rounds.

    Returns wall-clock samples; with ``cpu`` given, also fills it with the CPU seconds each call used
    (user + system, all threads, this process and its child processes: see ``tree_cpu``) — a figure other
    jobs on the machine disturb much less than wall-clock time."""
    names = list(fns)
    samples: dict[str, list[float]] = {n: [] for n in names}
    if cpu is not None:
        cpu.update({n: [] for n in names})
    for r in range(warmup + repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for n in order:
            c0 = tree_cpu()
            dt, _ = timed(fns[n])
            c1 = tree_cpu()
            if r >= warmup:
                samples[n].append(dt)
                if cpu is not None:
                    cpu[n].append(c1 - c0)
    return samples


_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _live_descendants() -> list[int]:
    kids: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:  # pragma: no cover - no procfs
        return []
    for d in entries:
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(d))
    out, todo = [], list(kids.get(os.getpid(), []))
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu() -> float:
    """CPU seconds (user + system) used so far by this process, its reaped children and its live
    descendants (e.g. an Engine's decoder and worker processes)."""
    t = os.times()
    total = t.user + t.system + t.children_user + t.children_system
    for pid in _live_descendants():
        try:
            with open(f"/proc/{pid}/stat") as fh:
                f = fh.read().rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / _TCK
        except (OSError, IndexError, ValueError):
            pass
    return total


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def loadavg() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:  # pragma: no cover
        return math.nan


# -- 1. keyframes -----------------------------------------------------------------------------------
def argus_keyframes(path: Path) -> list[int]:
    from argus_core.request import Sampling
    from argus_core.media.sampler import sample

    return [off for off, _f in sample(str(path), Sampling(mode=1, interval=5.0, ss=0.0, t=None))]


def bare_nonkey(path: Path) -> list[int]:
    """The bare PyAV loop: skip_frame=NONKEY, decode everything the demuxer gives (default threading)."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONKEY"
        return [int(round(f.time * 1000)) for f in c.decode(s)]


def bare_keypackets(path: Path) -> list[int]:
    """Reference: feed only keyframe packets to the decoder (what PERF-NOTES calls the packet route)."""
    out = []
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.skip_frame = "NONKEY"
        for pkt in c.demux(s):
            if pkt.is_keyframe or not pkt.size:
                out += [int(round(f.time * 1000)) for f in s.decode(pkt)]
    return out


def ffmpeg_nokey(path: Path) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-v", "error", "-skip_frame", "nokey",
                    "-i", str(path), "-f", "null", "-"], check=True)


def keyframe_fns(path: Path) -> dict[str, Callable[[], object]]:
    fns = {"argus": lambda: argus_keyframes(path), "bare_nonkey": lambda: bare_nonkey(path),
           "bare_keypackets": lambda: bare_keypackets(path)}
    if shutil.which("ffmpeg"):
        fns["ffmpeg_cli"] = lambda: ffmpeg_nokey(path)
    a, b = argus_keyframes(path), bare_nonkey(path)
    if a != b:
        raise AssertionError(f"keyframe offsets differ: argus {a} vs bare {b}")
    return fns


# -- 2. interval sampling ---------------------------------------------------------------------------
def _grid(duration: float, interval: float) -> list[float]:
    n = int(math.ceil(duration / interval - 1e-9))
    return [k * interval for k in range(n) if k * interval < duration]


def _duration(c, s) -> float:
    return float(s.duration * s.time_base) if s.duration else c.duration / 1e6


def argus_interval(path: Path, interval: float) -> list[int]:
    from argus_core.request import Sampling
    from argus_core.media.sampler import sample

    return [int(round(f.time * 1000)) for _o, f in
            sample(str(path), Sampling(mode=0, interval=interval, ss=0.0, t=None))]


def bare_decode_all(path: Path, interval: float) -> list[int]:
    """Decode every frame with frame threads; keep the last frame at or before each grid point."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO"
        grid = _grid(_duration(c, s), interval)
        out, k, prev = [], 0, None
        for f in c.decode(s):
            t = f.time
            while k < len(grid) and t > grid[k] + 1e-6:
                out.append(prev)
                k += 1
            prev = int(round(t * 1000))
        out += [prev] * (len(grid) - k)
        return out


def bare_seek(path: Path, interval: float, threads: str | None) -> list[int]:
    """Per grid point: seek to the keyframe at or before it, decode forward to the frame shown then.

    ``threads``: a ``thread_type`` to set ("AUTO" = frame + slice threads), or None for PyAV's default
    (slice threading, thread_count auto).

    Stops at the first frame at or past the target (for a frame exactly on the target that is the
    frame itself; otherwise the previous one is kept), i.e. the least decoding an exact sampler can do."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        if threads:
            s.thread_type = threads
        tb = s.time_base
        start = s.start_time or 0
        out = []
        for target in _grid(_duration(c, s), interval):
            c.seek(int(start + target / tb), stream=s, backward=True, any_frame=False)
            prev = None
            for f in c.decode(s):
                t = f.time
                if t >= target - 1e-6:
                    out.append(int(round(t * 1000)) if t <= target + 1e-6 or prev is None else prev)
                    break
                prev = int(round(t * 1000))
            else:
                out.append(prev)
        return out


def interval_fns(path: Path, interval: float = 5.0) -> dict[str, Callable[[], object]]:
    fns = {
        "argus": lambda: argus_interval(path, interval),
        "bare_decode_all": lambda: bare_decode_all(path, interval),
        "bare_seek_auto": lambda: bare_seek(path, interval, "AUTO"),
        "bare_seek_default": lambda: bare_seek(path, interval, None),
    }
    ref = bare_decode_all(path, interval)
    for name in ("argus", "bare_seek_auto", "bare_seek_default"):
        got = fns[name]()
        if got != ref:
            raise AssertionError(f"{name} picked different frames than decode-all: {got} vs {ref}")
    return fns


# -- 3. end-to-end overlap --------------------------------------------------------------------------
MODEL_SIZE = 224


def _pulp_session():
    from argus_core.runtime.manifest import MODELS_DIR, load_manifest, model_path
    from argus_core.runtime.session import open_session

    folder = Path(os.environ.get("ARGUS_MODELS_DIR") or MODELS_DIR) / "nsfwjs"
    man = load_manifest(folder)
    return open_session(model_path(folder, man), threads=1), man


def _grid_frames(c, s, interval: float, seconds: float | None):
    """Yield the frame shown at each grid point (decode forward, no seeking: dense sampling)."""
    end = _duration(c, s) if seconds is None else min(seconds, _duration(c, s))
    grid = _grid(end, interval)
    k, prev = 0, None
    for f in c.decode(s):
        while k < len(grid) and f.time > grid[k] + 1e-6:
            yield prev
            k += 1
        if k >= len(grid):
            return
        prev = f
    for _ in range(len(grid) - k):
        yield prev


def _grid_images(path: Path, interval: float, seconds: float | None):
    """The naive decode: PyAV (1 thread), the frame at each grid point, converted to 224² RGB."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_count = 1
        for f in _grid_frames(c, s, interval, seconds):
            yield f.to_ndarray(format="rgb24", width=MODEL_SIZE, height=MODEL_SIZE)


def stage_decode(path: Path, interval: float, seconds: float | None, keep: bool = False):
    """Stage 1 alone, one core: PyAV decode (1 thread) + pick grid frames + convert to 224² RGB."""
    imgs = []
    for img in _grid_images(path, interval, seconds):
        if keep:
            imgs.append(img)
    return imgs


def _preprocess(img: np.ndarray, man) -> np.ndarray:
    mean = np.asarray(man.input.mean, np.float32)
    std = np.asarray(man.input.std, np.float32)
    return ((img.astype(np.float32) - mean) / std)[None]


def stage_infer(sess, man, imgs: list[np.ndarray], batch: int = 1) -> np.ndarray:
    """Stage 2 alone, one core: numpy preprocess + onnxruntime (1 intra-op thread), ``batch`` at a time."""
    out = []
    for i in range(0, len(imgs), batch):
        x = np.concatenate([_preprocess(im, man) for im in imgs[i:i + batch]])
        out.append(sess.run(None, {man.input.name: x})[0])
    return np.concatenate(out)


def naive(path: Path, interval: float, seconds: float | None, sess, man) -> np.ndarray:
    """The naive single-process loop: decode → numpy preprocess → onnxruntime, one frame at a time."""
    out = [sess.run(None, {man.input.name: _preprocess(img, man)})[0]
           for img in _grid_images(path, interval, seconds)]
    return np.concatenate(out)


#: The pulp workload of the engine benchmark: nsfwjs alone, the model the naive baseline runs, so the ratio
#: measures the pipeline and not issue 9's ensemble (its cost is bench/bench_pulp_ensemble.py's).
#: ``ARGUS_BENCH_PULP_ENSEMBLE=cascade|full`` measures the engine with the ensemble instead.
PULP_ENSEMBLE = os.environ.get("ARGUS_BENCH_PULP_ENSEMBLE", "off")
PULP_OPTIONS = {"pulp_cross_check": PULP_ENSEMBLE != "off"}


def engine_request(path: Path, interval: float, seconds: float | None) -> dict:
    vf = {"mode": 0, "interval": interval}
    if seconds:
        vf["t"] = seconds
    return {"data": {"uri": str(path)}, "params": {"vframe": vf},
            "ops": [{"op": "pulp", "params": {"other": {"ensemble": PULP_ENSEMBLE}}}]}


def cuts_in(result: dict) -> int:
    """Number of cuts covered by a pulp result (sum of segment cut counts)."""
    segs = result["pulp"]["segments"]
    return sum(len(seg.get("cuts", [])) for seg in segs)


class OverlapBench:
    """Holds the Engine (started once, outside any timed region) and the stage inputs."""

    def __init__(self, path: Path, interval: float, seconds: float | None, decoders: int = 1,
                 workers: int = 1, max_batch: int = 8) -> None:
        from argus_core import Engine

        self.path, self.interval, self.seconds = path, interval, seconds
        self.sess, self.man = _pulp_session()
        self.imgs = stage_decode(path, interval, seconds, keep=True)
        self.frames = len(self.imgs)
        self.side_by_side = ParallelStages(path, interval, seconds)
        # ARGUS_BENCH_FRAME_THREADS=on|off overrides the Engine's own rule, for A/B runs
        ft = {"on": True, "off": False}.get(os.environ.get("ARGUS_BENCH_FRAME_THREADS", ""))
        self.engine = Engine(decoders=decoders, workers=workers, max_batch=max_batch, ops=["pulp"],
                             frame_threads=ft, options=PULP_OPTIONS)
        self.engine_cfg = {"decoders": decoders, "workers": workers, "max_batch": max_batch}
        self.request = engine_request(path, interval, seconds)
        res = self.engine.analyze(self.request)  # warm-up, and a check it analysed every frame
        labels = res["pulp"]["labels"]
        if not labels:
            raise AssertionError(f"engine returned no labels: {res}")

    def fns(self) -> dict[str, Callable[[], object]]:
        return {
            "engine": lambda: self.engine.analyze(self.request),
            "naive": lambda: naive(self.path, self.interval, self.seconds, self.sess, self.man),
            "decode_1core": lambda: stage_decode(self.path, self.interval, self.seconds),
            "infer_1core_b1": lambda: stage_infer(self.sess, self.man, self.imgs, 1),
            "stages_side_by_side": self.side_by_side.run,
        }

    def ref_fns(self) -> dict[str, Callable[[], object]]:
        """Reference only: Argus' own stages alone (its decoder code, its op code at its batch size)."""
        from argus_core.media.renditions import Frame
        from argus_core.ops import create_op
        from argus_core.request import OpParams, Sampling
        from argus_core.media.renditions import Converter
        from argus_core.media.sampler import sample

        op = create_op("pulp", options=PULP_OPTIONS)
        op.load(threads=1)
        specs = op.specs()  # every rendition the op reads (pulp is a cascade: nsfwjs, then open_nsfw)
        sampling = Sampling(mode=0, interval=self.interval, ss=0.0, t=self.seconds)

        def argus_decode(keep: bool = False):
            conv, out = None, []
            # with the engine's own frame-thread choice, so the stage alone is the one the engine runs
            for _o, f in sample(str(self.path), sampling, frame_threads=self.engine.frame_threads_for(1)):
                conv = conv or Converter(specs, f.width, f.height)
                views = conv.convert(f)
                if keep:
                    out.append(Frame(offset=0, src_w=f.width, src_h=f.height, views=dict(zip(specs, views))))
            return out

        frames = argus_decode(keep=True)  # the op's input, made once outside the timed region
        params = [msgspec.convert({"other": {"ensemble": PULP_ENSEMBLE}}, OpParams)] * len(frames)
        bs = self.engine_cfg["max_batch"]

        def argus_infer():
            for i in range(0, len(frames), bs):
                op.infer(frames[i:i + bs], params[i:i + bs])

        return {"argus_decode_stage": argus_decode, "argus_infer_stage_b%d" % bs: argus_infer}

    def close(self) -> None:
        self.engine.close()
        self.side_by_side.close()


def _stage_server(conn, which: str, path: str, interval: float, seconds: float | None) -> None:
    """A process that runs one stage alone on command (for the 'two stages side by side' reference)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    p = Path(path)
    if which == "infer":
        sess, man = _pulp_session()
        imgs = stage_decode(p, interval, seconds, keep=True)
        stage_infer(sess, man, imgs[:2])
        job = lambda: stage_infer(sess, man, imgs, 1)  # noqa: E731
    else:
        job = lambda: stage_decode(p, interval, seconds)  # noqa: E731
    conn.send("ready")
    while conn.recv() == "go":
        job()
        conn.send("done")


class ParallelStages:
    """The two 1-core stages run at the same time in two idle processes, with no data flowing between
    them: the best any two-process pipeline could do on this machine at that moment (the ideal overlap,
    measured instead of computed). Processes are started once, outside the timed region."""

    def __init__(self, path: Path, interval: float, seconds: float | None) -> None:
        ctx = mp.get_context("spawn")
        self.conns, self.procs = [], []
        for which in ("decode", "infer"):
            a, b = ctx.Pipe()
            pr = ctx.Process(target=_stage_server, args=(b, which, str(path), interval, seconds), daemon=True)
            pr.start()
            self.conns.append(a)
            self.procs.append(pr)
        for c in self.conns:
            assert c.recv() == "ready"

    def run(self) -> None:
        for c in self.conns:
            c.send("go")
        for c in self.conns:
            assert c.recv() == "done"

    def close(self) -> None:
        for c in self.conns:
            try:
                c.send("exit")
            except OSError:
                pass
        for pr in self.procs:
            pr.join(10)
            if pr.is_alive():
                pr.kill()


def overlap_figures(med: dict[str, float], frames: int) -> dict[str, float]:
    td, ti, te, tn = med["decode_1core"], med["infer_1core_b1"], med["engine"], med["naive"]
    slow = max(td, ti)
    ideal = (td + ti) / slow
    speedup = tn / te
    return {
        "frames": frames, "t_decode": td, "t_infer": ti, "t_naive": tn, "t_engine": te,
        "balance": td / ti, "ideal_speedup": ideal, "speedup": speedup,
        "ratio_vs_ideal": speedup / ideal, "ratio_vs_slowest_stage": slow / te,
        "fps_engine": frames / te, "fps_slowest_stage": frames / slow,
        # reference: both stages run at once in two processes (no transport, no coordination)
        "t_side_by_side": med.get("stages_side_by_side", math.nan),
        "ratio_vs_side_by_side": med.get("stages_side_by_side", math.nan) / te,
    }


def _decode_window(path: Path, seconds: float) -> int:
    """Decode every frame of the first ``seconds`` s on one thread, converting nothing."""
    n = 0
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        s.codec_context.thread_count = 1
        for f in c.decode(s):
            if f.time >= seconds:
                break
            n += 1
    return n


def pick_interval(path: Path, seconds: float, sess=None, man=None, probe_s: float = 8.0) -> tuple[float, dict]:
    """Choose the interval that makes t_decode ≈ t_infer, from costs measured on this machine.

    Sampling denser than the GOP decodes every frame whatever the interval, so
    t_decode(N) = D + N·c (D: decoding the window, c: converting one sample to 224² RGB) and
    t_infer(N) = N·i (i: preprocess + inference per sample, one thread). Equal when N = D / (i − c);
    the interval is window / N rounded to whole frames (40 ms at 25 fps). Costs come from the first
    ``probe_s`` seconds; ``timed`` wall-clock, so other load on the machine shifts the choice a little."""
    if sess is None:
        sess, man = _pulp_session()
    probe_s = min(probe_s, seconds)
    _decode_window(path, 1.0)  # warm the page cache and the libraries
    d, frames = timed(lambda: _decode_window(path, probe_s))
    imgs = stage_decode(path, 0.2, 2.0, keep=True)
    stage_infer(sess, man, imgs[:2])
    ti, _ = timed(lambda: stage_infer(sess, man, imgs))
    i = ti / len(imgs)
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        fr = [f for _, f in zip(range(20), c.decode(s))]
    tc, _ = timed(lambda: [f.to_ndarray(format="rgb24", width=MODEL_SIZE, height=MODEL_SIZE) for f in fr])
    conv = tc / len(fr)
    per_s = d / probe_s
    if i <= conv:
        interval = 0.04
    else:
        n_per_s = per_s / (i - conv)  # samples per video second that balance the stages
        interval = max(0.04, round(1.0 / n_per_s / 0.04) * 0.04)
    return round(interval, 2), {"decode_s_per_video_s": per_s, "infer_s_per_frame": i,
                                "convert_s_per_frame": conv, "probe_frames": frames}


# -- 4. ring transfer -------------------------------------------------------------------------------
FRAME_SHAPE = (1080, 1920, 3)


def _frame() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=FRAME_SHAPE, dtype=np.uint8)


def _ring_producer(ctl, idx_w, free_r, ring_name, slots, slot_bytes, n):
    from argus_core.pipeline.ring import FrameRing

    ring = FrameRing.attach(ring_name, slots, slot_bytes)
    src = _frame()
    free = list(range(slots))
    ctl.send("ready")
    ctl.recv()  # go
    for i in range(n):
        if not free:
            free.append(free_r.recv())  # wait for the consumer to release a slot (backpressure)
        while free_r.poll():
            free.append(free_r.recv())
        slot = free.pop()
        ring.write_meta(slot, job=1, seq=i, offset_ms=i * 40, src=(1920, 1080), shapes=[FRAME_SHAPE])
        np.copyto(ring.view(slot, 0), src)  # what a decoder does: write the frame into the slot
        idx_w.send(slot)  # only the index travels
    idx_w.send(None)
    ctl.recv()
    ring.close()


def _ring_consumer(ctl, idx_r, free_w, ring_name, slots, slot_bytes):
    from argus_core.pipeline.ring import FrameRing

    ring = FrameRing.attach(ring_name, slots, slot_bytes)
    ctl.send("ready")
    acc = 0
    while True:
        slot = idx_r.recv()
        if slot is None:
            break
        meta = ring.meta(slot)
        v = ring.view(slot, 0)  # a numpy view of the slot: no copy
        acc += int(v[540, 960, 0]) + meta["seq"]
        del v
        free_w.send(slot)
    ctl.send(acc)
    ring.close()


def ring_transfer(n: int = 300, slots: int = 8) -> float:
    """Seconds to move ``n`` 1080p RGB frames producer → consumer through a FrameRing.

    Producer writes each frame into a free slot and sends the slot index on a pipe; the consumer reads
    the frame in place and sends the index back on another pipe (the free list)."""
    from argus_core.pipeline.ring import FrameRing

    ctx = mp.get_context("spawn")
    ring = FrameRing.create(slots, int(np.prod(FRAME_SHAPE)))
    procs = []
    try:
        idx_r, idx_w = ctx.Pipe(duplex=False)
        free_r, free_w = ctx.Pipe(duplex=False)
        p_ctl, p_child = ctx.Pipe()
        c_ctl, c_child = ctx.Pipe()
        procs = [
            ctx.Process(target=_ring_producer,
                        args=(p_child, idx_w, free_r, ring.name, slots, ring.slot_bytes, n)),
            ctx.Process(target=_ring_consumer, args=(c_child, idx_r, free_w, ring.name, slots, ring.slot_bytes)),
        ]
        for p in procs:
            p.start()
        assert p_ctl.recv() == "ready" and c_ctl.recv() == "ready"
        t0 = time.perf_counter()
        p_ctl.send("go")
        c_ctl.recv()  # the consumer has seen all n frames
        dt = time.perf_counter() - t0
        p_ctl.send("bye")
        return dt
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.kill()
        ring.close()


def _q_producer(q, conn, n):
    src = _frame()
    conn.send("ready")
    conn.recv()
    for _ in range(n):
        q.put(src)
    q.put(None)
    q.close()
    q.join_thread()


def _q_consumer(q, conn):
    conn.send("ready")
    acc = 0
    while True:
        a = q.get()
        if a is None:
            break
        acc += int(a[540, 960, 0])
    conn.send(acc)


def queue_transfer(n: int = 60, maxsize: int = 8) -> float:
    """Seconds to move ``n`` 1080p RGB frames through a pickling multiprocessing.Queue."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue(maxsize=maxsize)
    p_par, p_child = ctx.Pipe()
    c_par, c_child = ctx.Pipe()
    prod = ctx.Process(target=_q_producer, args=(q, p_child, n))
    cons = ctx.Process(target=_q_consumer, args=(q, c_child))
    prod.start(), cons.start()
    assert p_par.recv() == "ready" and c_par.recv() == "ready"
    t0 = time.perf_counter()
    p_par.send("go")
    c_par.recv()
    dt = time.perf_counter() - t0
    prod.join(10), cons.join(10)
    return dt


# -- 5. peak RSS ------------------------------------------------------------------------------------
def rss_probe(path: Path, mode: int, interval: float = 5.0, timeout: float = 600) -> dict:
    """Analyse ``path`` in a fresh Python process (Engine start → analyze → figures); see _rss_probe.py."""
    cmd = [sys.executable, str(HERE / "_rss_probe.py"), str(path), str(mode), str(interval)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    return json.loads(out.stdout.strip().splitlines()[-1])
