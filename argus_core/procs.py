"""Child process main loops: decoders (sampler → ring) and inference workers (ring → ops → results).

Both talk to the parent over their own duplex pipe, with small tuples; pixels only ever travel through
the shared-memory ring. Messages (parent → child / child → parent):

decoder  ← ("job", key, uri, sampling, specs, timeout, max_frames, max_duration, frame_threads) | ("slots", [i, …]) | ("stop", key) | ("exit",)
decoder  → ("meta", key, duration_ms, src_w, src_h) | ("frame", slot, key, seq, offset_ms)
           | ("done", key, frames, error_or_None, [unused slot, …])
worker   ← ("params", key, {op: OpParams}) | ("frames", [(slot, key, seq, (op, …)), …]) | ("forget", key) | ("exit",)
worker   → ("results", [(slot, key, seq, {op: CutOutput} | None, error_or_None), …])
           | ("ready", {pid, device, cupy_imported}, {op: reason})
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import deque
from multiprocessing.connection import Connection
from typing import Any

from .errors import ArgusError, EngineError
from .frames import Frame, FrameSpec
from .request import OpParams

log = logging.getLogger("argus.procs")


def _child_setup() -> None:
    # The parent handles Ctrl-C and tells children to exit; a child dying on SIGINT would look like a crash.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _error_tuple(exc: BaseException) -> tuple[str, str, str]:
    if isinstance(exc, ArgusError):
        return (type(exc).__name__, exc.message, exc.detail)
    return ("EngineError", "internal error", f"{type(exc).__name__}: {exc}")


def rebuild_error(t: tuple[str, str, str]) -> ArgusError:
    from . import errors

    cls = getattr(errors, t[0], EngineError)
    if not (isinstance(cls, type) and issubclass(cls, ArgusError)):
        cls = EngineError
    err = cls.__new__(cls)
    ArgusError.__init__(err, t[1], detail=t[2])
    return err


# -- decoder ----------------------------------------------------------------------------------------
def decoder_main(conn: Connection, ring_name: str, slots: int, slot_bytes: int,
                 source_options: dict[str, str] | None = None) -> None:
    """One video at a time: sample it, convert each frame into a granted ring slot, post the index.

    ``source_options``: extra FFmpeg options for network sources. Each job says whether its decoding may
    use FFmpeg frame threads (None: the sampler decides per file)."""
    _child_setup()
    if source_options and source_options.get("http_proxy"):
        # FFmpeg reads no_proxy from the environment even when given http_proxy: hosts listed there
        # (metadata addresses, cluster-internal names) would be fetched around the checking proxy.
        for var in ("no_proxy", "NO_PROXY"):
            os.environ.pop(var, None)
    from .ring import FrameRing
    from .sampler import Converter, iter_interval, iter_keyframes, map_av_error, open_video

    ring = FrameRing.attach(ring_name, slots, slot_bytes)
    granted: deque[int] = deque()
    stopped: set[int] = set()
    pending_jobs: deque[tuple] = deque()

    def handle(msg: tuple) -> bool:
        kind = msg[0]
        if kind == "slots":
            granted.extend(msg[1])
        elif kind == "stop":
            stopped.add(msg[1])
        elif kind == "job":
            pending_jobs.append(msg)
        elif kind == "exit":
            return False
        return True

    def drain(block: bool) -> bool:
        while block or conn.poll():
            if not handle(conn.recv()):
                return False
            block = False
        return True

    try:
        while True:
            if not pending_jobs and not drain(block=True):
                return
            if not pending_jobs:
                continue
            _, key, uri, sampling, specs, timeout, max_frames, max_duration, frame_threads = pending_jobs.popleft()
            stopped.discard(key)
            frames = 0
            error = None
            container = None
            try:
                container, stream = open_video(uri, timeout, source_options)
                cc = stream.codec_context
                conv = Converter(specs, cc.width, cc.height)
                shapes = conv.shapes()
                ring.layout(shapes)  # fail early if the renditions don't fit a slot
                from .sampler import duration_of

                dur = duration_of(container, stream)
                if max_duration and dur is not None and dur > max_duration:
                    from .errors import VideoTooLong

                    raise VideoTooLong(max_duration, detail=f"{dur:.0f} s")
                conn.send(("meta", key, None if dur is None else int(dur * 1000), cc.width, cc.height))

                def should_stop() -> bool:
                    if not drain(block=False):
                        raise SystemExit(0)
                    return key in stopped

                if sampling.mode == 1:
                    it = iter_keyframes(container, stream, sampling, should_stop,
                                        reopen=lambda: open_video(uri, timeout, source_options))
                else:
                    it = iter_interval(container, stream, sampling, should_stop, max_frames, frame_threads)
                for offset_ms, frame in it:
                    while not granted and key not in stopped:
                        if not drain(block=True):
                            return
                    if key in stopped:
                        break
                    slot = granted.popleft()
                    ring.write_meta(slot, job=key, seq=frames, offset_ms=offset_ms,
                                    src=(cc.width, cc.height), shapes=shapes)
                    conv.convert_into(frame, ring.views(slot))
                    conn.send(("frame", slot, key, frames, offset_ms))
                    frames += 1
                if frames == 0 and key not in stopped:
                    error = _no_frames_error(uri, timeout, source_options)
            except SystemExit:
                return
            except ArgusError as exc:
                error = _error_tuple(exc)
            except MemoryError as exc:
                error = _error_tuple(map_av_error(exc))
            except Exception as exc:  # FFmpeg errors mid-stream
                if frames == 0:
                    error = _error_tuple(map_av_error(exc))
                else:
                    log.warning("decoding ended early after %d frames: %s", frames, exc)
            finally:
                if container is not None:
                    container.close()
            # Hand unused slots back so an idle decoder does not sit on ring capacity.
            returned = list(granted)
            granted.clear()
            conn.send(("done", key, frames, error, returned))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        ring.close()


def _no_frames_error(uri: str, timeout: float, options: dict[str, str] | None) -> tuple[str, str, str] | None:
    from .sampler import _nothing_decodable

    if _nothing_decodable(uri, timeout, options):
        return ("CannotOpen", "cannot open the file", "no decodable frame")
    return None


# -- inference worker ---------------------------------------------------------------------------------
def worker_main(
    conn: Connection,
    ring_name: str,
    slots: int,
    slot_bytes: int,
    op_names: list[str],
    models_dir: str | None,
    max_batch: int,
    max_wait_s: float,
    threads: int,
    options: dict[str, Any] | None = None,
) -> None:
    """Gather frames into batches (across jobs), run each frame's ops, post small results."""
    _child_setup()
    import sys

    from .device import select_device
    from .ops import create_op
    from .ring import FrameRing

    ring = FrameRing.attach(ring_name, slots, slot_bytes)
    device = select_device()
    ops = {}
    problems = {}
    for name in op_names:
        try:
            op = create_op(name, models_dir, options)
            op.load(providers=device.providers, threads=threads)
            ops[name] = op
        except Exception as exc:
            problems[name] = f"{type(exc).__name__}: {exc}"
    warmed: set[int] = set()
    for name, op in list(ops.items()):
        for model in op.loaded.values():
            if id(model) in warmed or not hasattr(model, "warmup"):
                continue
            warmed.add(id(model))
            try:
                model.warmup(max_batch)
            except Exception as exc:  # a model that cannot run a batch cannot serve its op
                problems[name] = f"warm-up failed: {type(exc).__name__}: {exc}"
                ops.pop(name, None)
    info = {"pid": os.getpid(), "device": device.name, "cupy_imported": "cupy" in sys.modules}
    conn.send(("ready", info, problems))

    # Fault injection for tests and drills: a slow model (ARGUS_FAULT_INFER_DELAY_MS per batch).
    delay = float(os.environ.get("ARGUS_FAULT_INFER_DELAY_MS", "0") or 0) / 1000.0
    params: dict[int, dict[str, OpParams]] = {}
    specs_of: dict[int, tuple[FrameSpec, ...]] = {}
    queue: deque[tuple] = deque()
    try:
        while True:
            if not queue:
                if not _worker_handle(conn.recv(), queue, params, specs_of):
                    return
            deadline = time.monotonic() + max_wait_s
            while len(queue) < max_batch:
                left = deadline - time.monotonic()
                if left <= 0 or not conn.poll(left):
                    break
                if not _worker_handle(conn.recv(), queue, params, specs_of):
                    return
            batch = [queue.popleft() for _ in range(min(max_batch, len(queue)))]
            if delay:
                time.sleep(delay)
            conn.send(("results", _run_batch(batch, ring, ops, params, specs_of)))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return
    finally:
        ring.close()


def _worker_handle(msg: tuple, queue: deque, params: dict, specs_of: dict) -> bool:
    kind = msg[0]
    if kind == "frames":
        queue.extend(msg[1])
    elif kind == "params":
        params[msg[1]] = msg[2]
        specs_of[msg[1]] = msg[3]
    elif kind == "forget":
        params.pop(msg[1], None)
        specs_of.pop(msg[1], None)
    elif kind == "exit":
        return False
    return True


def _run_batch(batch: list[tuple], ring: Any, ops: dict, params: dict, specs_of: dict) -> list[tuple]:
    frames: list[Frame] = []
    batch = list(batch)
    for slot, key, _seq, _ops in batch:
        meta = ring.meta(slot)
        views = dict(zip(specs_of.get(key, ()), ring.views(slot)))
        frames.append(Frame(offset=meta["offset_ms"], src_w=meta["src_w"], src_h=meta["src_h"], views=views))
    outputs: list[dict[str, Any]] = [{} for _ in batch]
    errors: list[tuple | None] = [None] * len(batch)
    by_op: dict[str, list[int]] = {}
    for i, (_slot, key, _seq, names) in enumerate(batch):
        if key not in params:
            continue  # the job ended meanwhile (cancelled, failed or terminated): skip its frames
        for name in names:
            by_op.setdefault(name, []).append(i)
    for name, idx in by_op.items():
        op = ops.get(name)
        try:
            if op is None:
                raise EngineError(detail=f"op {name} not loaded in this worker")
            outs = op.infer([frames[i] for i in idx], [params[batch[i][1]][name] for i in idx])
            for i, out in zip(idx, outs):
                outputs[i][name] = out
        except Exception as exc:
            log.exception("op %s failed on a batch of %d", name, len(idx))
            err = _error_tuple(exc if isinstance(exc, ArgusError) else
                               EngineError(f"inference failed: {name}", detail=f"{type(exc).__name__}: {exc}"))
            for i in idx:
                errors[i] = err
    del frames  # drop ring views before the parent recycles the slots
    return [(slot, key, seq, outputs[i], errors[i]) for i, (slot, key, seq, _n) in enumerate(batch)]
