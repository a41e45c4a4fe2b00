"""Where the inference worker's CPU goes in the 5-op analysis: per op, per model run, and preprocessing,
in-process on real frames (the decoder's own renditions), batches of 8 as the worker runs them.

    python -m bench.profile_ops [--threads 1] [--precision auto|fp32|int8] [--cprofile] [--reps 3]

Per-op CPU ms per frame comes from ``time.process_time`` around each op's ``infer`` (the memo shared by
image_label/terror and detection/terror means the first op that runs a model pays for it, as in the worker);
per-model CPU ms from wrapping every loaded model's ``run``. ``--cprofile`` prints the top functions (its
per-call overhead inflates numpy-heavy Python code such as NMS: read the op/model CPU ms of a run without it).
Use more frames than the memos hold (64 per model) so that the measured passes are all misses, as in a job.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus_core.pipeline.worker import infer_batch, load_ops  # noqa: E402
from argus_core.request import OpParams  # noqa: E402

OPS = ["image_label", "detection", "pulp", "terror", "terror_classify"]


def _timed(fn, totals: dict[str, float], name: str):
    """``fn`` wrapped to add its CPU seconds to ``totals[name]`` (a model's run, an op's infer)."""
    def timed(*args, **kwargs):
        t = time.process_time()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.process_time() - t
    return timed


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--ensemble", default="", help="pulp params.other.ensemble (default: the op's default)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cprofile", action="store_true")
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--per-clip", type=int, default=24)
    args = ap.parse_args(argv)
    from tests.footage_frames import real_frames

    ops, problems = load_ops(OPS, None, {"precision": args.precision}, ["CPUExecutionProvider"], args.threads,
                             args.batch)
    assert not problems, problems
    specs = {s for op in ops.values() for s in op.specs()}
    frames = [f.frame for f in real_frames(specs, interval=args.interval, per_clip=args.per_clip)]
    model_ms: dict[str, float] = defaultdict(float)
    seen: set[int] = set()
    for op in ops.values():
        for key, model in op.loaded.items():
            if id(model) in seen or not hasattr(model, "run"):
                continue
            seen.add(id(model))
            model.run = _timed(model.run, model_ms, model.folder.name)
    params = {n: OpParams(other={"ensemble": args.ensemble}) if (n == "pulp" and args.ensemble) else OpParams()
              for n in OPS}
    op_ms: dict[str, float] = defaultdict(float)
    for name, op in ops.items():  # time each op's infer
        op.infer = _timed(op.infer, op_ms, name)
    prof = cProfile.Profile() if args.cprofile else None
    n = 0
    t_all = time.process_time()
    w0 = time.perf_counter()
    for rep in range(args.reps):
        if rep == 1:  # rep 0 is a warm-up
            op_ms.clear()
            model_ms.clear()
            n = 0
            t_all = time.process_time()
            w0 = time.perf_counter()
            if prof:
                prof.enable()
        for i in range(0, len(frames), args.batch):
            chunk = frames[i:i + args.batch]
            # fresh Frame objects per rep: the memos are per frame object
            chunk = [type(f)(offset=f.offset, src_w=f.src_w, src_h=f.src_h, views=dict(f.views)) for f in chunk]
            infer_batch(ops, chunk, [1] * len(chunk), [OPS] * len(chunk), lambda k, name: params[name])
            n += len(chunk)
    total = time.process_time() - t_all
    wall = time.perf_counter() - w0
    if prof:
        prof.disable()
    print(f"{n} frames, threads {args.threads}, precision {args.precision}, ensemble {args.ensemble or 'default'}, "
          f"batch {args.batch}")
    print(f"total {1000 * total / n:.1f} CPU ms/frame, wall {1000 * wall / n:.1f} ms/frame")
    for k, v in sorted(op_ms.items(), key=lambda kv: -kv[1]):
        print(f"  op    {k:16s} {1000 * v / n:6.1f} CPU ms/frame")
    for k, v in sorted(model_ms.items(), key=lambda kv: -kv[1]):
        print(f"  model {k:16s} {1000 * v / n:6.1f} CPU ms/frame")
    print(f"  outside model runs {1000 * (total - sum(model_ms.values())) / n:6.1f} CPU ms/frame")
    if prof:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
