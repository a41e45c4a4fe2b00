"""pulp's cost per ensemble mode on the real footage of models/EVAL.md (frames/s through the engine).

    python -m bench.bench_pulp_ensemble

One engine (decoders=1, workers=1); every clip once per mode, modes interleaved over ``--rounds`` rounds;
prints frames/s per mode and the ratio to ``off`` (nsfwjs alone, the pre-issue-9 pulp) measured in the same
run. ``cascade-1``/``full-1`` are those modes with ``neighbours: false`` (each cut its own frame only), so the
cost of the t±500 ms neighbours (ORIGINAL-BEHAVIOUR.md §2) is the ratio of each pair. Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def other(mode: str) -> dict:
    name, _, one = mode.partition("-")
    return {"ensemble": name, **({"neighbours": False} if one else {})}


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT))
    from argus_core import Engine

    from bench.eval_footage import CLIPS, clip_path, load_labels

    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    labels = load_labels()
    paths = [clip_path(c, labels) for c in CLIPS]
    modes = ("off", "cascade-1", "cascade", "full-1", "full")
    secs: dict[str, list[float]] = {m: [] for m in modes}
    frames = 0
    with Engine(decoders=1, workers=1, ops=["pulp"]) as engine:
        for r in range(args.rounds):
            for mode in modes:
                t = time.perf_counter()
                n = 0
                for p in paths:
                    out = engine.analyze({"data": {"uri": str(p)}, "params": {"vframe": {"mode": 0, "interval": 1}},
                                          "ops": [{"op": "pulp", "params": {"other": other(mode)}}]})
                    n += sum(len(s["cuts"]) for s in out["pulp"]["segments"])
                secs[mode].append(time.perf_counter() - t)
                frames = n
    base = statistics.median(secs["off"])
    print(f"{frames} cuts over {len(paths)} clips, median of {args.rounds} rounds")
    for m in modes:
        med = statistics.median(secs[m])
        print(f"{m:10s} {frames / med:6.1f} frames/s  ratio to off {base / med:.2f}  "
              f"({', '.join(f'{x:.2f}' for x in secs[m])} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
