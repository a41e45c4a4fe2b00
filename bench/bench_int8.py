"""5-op analysis on real footage: today's settings (fp32 models, 1 intra-op thread) vs this machine's
settings (``precision=auto`` — int8 where models/quantize.py chose it — and the threads of
:func:`argus_core.runtime.tuning.plan`), alternated in one run, with the agreement of their results.

    .venv/bin/python bench/bench_int8.py [--rounds 2] [--interval 0.5] [--t 20]

The ops: image_label, detection, pulp, terror, terror_classify (the 5-op analysis of bench/RESULTS.md).
Each configuration is one ``Engine`` (1 decoder, 1 worker, as the baseline row was measured) that analyses
every real clip (:data:`tests.footage_frames.CLIPS`, sampled every ``interval`` s for at most ``t`` s);
frames/s = sampled frames / wall time, and the worker's CPU time per frame is read from /proc. The
machine is shared, so the configurations alternate and the ratio of medians is what counts.

Agreement (new vs baseline, same frames): pulp label, image_label top-1 class, terror label,
terror_classify class set, detection recall of the baseline's confident (≥ 0.5) boxes and F1 at the op threshold (IoU ≥ 0.5,
same class).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus_core.pipeline.engine import Engine  # noqa: E402
from argus_core.runtime import precision  # noqa: E402
from argus_core.runtime.tuning import machine_cores, plan  # noqa: E402
from tests.data import footage  # noqa: E402
from tests.footage_frames import CLIPS  # noqa: E402

OPS = ["image_label", "detection", "pulp", "terror", "terror_classify"]


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def cuts(result: dict) -> dict[str, dict[int, object]]:
    """op → {offset: cut result}."""
    out: dict[str, dict[int, object]] = {}
    for op, r in result.items():
        out[op] = {c["offset"]: c.get("result") for s in r.get("segments", []) for c in s.get("cuts", [])}
    return out


def run(engine: Engine, bodies: list[dict]) -> tuple[float, float, int, list[dict]]:
    """(wall s, worker CPU s, frames, per-clip cuts)."""
    pid = engine.child_pids()["workers"][0]
    c0, t0 = cpu_s(pid), time.perf_counter()
    results = [cuts(engine.analyze(b)) for b in bodies]
    wall, cpu = time.perf_counter() - t0, cpu_s(pid) - c0
    frames = sum(len(r.get("pulp", {})) for r in results)
    return wall, cpu, frames, results


def boxes(dets: list[dict], min_score: float = 0.0) -> list[tuple[int, tuple[float, ...]]]:
    out = []
    for d in dets or []:
        if d["score"] >= min_score:
            xs, ys = [p[0] for p in d["pts"]], [p[1] for p in d["pts"]]
            out.append((d["index"], (min(xs), min(ys), max(xs), max(ys))))
    return out


def agreement(base: list[dict], new: list[dict]) -> dict[str, float]:
    pulp = il = tc = te = n = 0
    ref_conf, ref_all, got_all = [], [], []
    for b, g in zip(base, new):
        for off, rb in b["pulp"].items():
            rg = g["pulp"].get(off)
            if rg is None:
                continue
            n += 1
            pulp += rb["label"] == rg["label"]
            cb, cg = b["image_label"].get(off) or {}, g["image_label"].get(off) or {}
            top = lambda c: (c.get("confidences") or [{}])[0].get("class")  # noqa: E731
            il += top(cb) == top(cg)
            tb, tg = b["terror_classify"].get(off), g["terror_classify"].get(off)
            tc += json.dumps(_labels(tb)) == json.dumps(_labels(tg))
            te += (b["terror"].get(off) or {}).get("label") == (g["terror"].get(off) or {}).get("label")
            db, dg = (b["detection"].get(off) or {}).get("detections"), (g["detection"].get(off) or {}).get("detections")
            ref_conf.append(boxes(db, 0.5))
            ref_all.append(boxes(db))
            got_all.append(boxes(dg))
    return {"frames": n, "pulp_label": round(pulp / n, 4), "image_label_top1": round(il / n, 4),
            "terror_classify_labels": round(tc / n, 4), "terror_label": round(te / n, 4),
            "detection_confident_recall": precision.detection_recall(ref_conf, got_all),
            "detection_f1": precision.detection_f1(ref_all, got_all),
            "baseline_detections": sum(map(len, ref_all))}


def _labels(r: object) -> object:
    if isinstance(r, dict):
        return sorted(str(x.get("class", x.get("label", x))) if isinstance(x, dict) else str(x)
                      for x in (r.get("classes") or r.get("labels") or r.get("confidences") or []))
    return r


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("--t", type=float, default=20.0)
    ap.add_argument("--out", default="", help="also write the figures as JSON here")
    ap.add_argument("--attribution", action="store_true",
                    help="also int8 with 1 thread and fp32 with the tuned threads (which change pays)")
    ap.add_argument("--two-threads", action="store_true",
                    help="also precision auto with 2 intra-op threads (when the rule chose otherwise)")
    args = ap.parse_args(argv)
    bodies = [{"data": {"uri": str(footage(c))},
               "params": {"vframe": {"mode": 0, "interval": args.interval, "t": args.t}},
               "ops": [{"op": o} for o in OPS]} for c in CLIPS]
    tuned = plan(machine_cores(), 1, 1)
    configs = {
        "baseline (fp32, 1 thread)": dict(threads=1, options={"precision": "fp32"}),
        f"tuned (precision auto, {tuned.threads} threads)": dict(threads=None, options={"precision": "auto"}),
    }
    if args.two_threads and tuned.threads != 2:
        # what the rule turned down on this machine, measured in the same run (the load decides it)
        configs["precision auto, 2 threads"] = dict(threads=2, options={"precision": "auto"})
    if args.attribution:
        configs["int8 only (precision auto, 1 thread)"] = dict(threads=1, options={"precision": "auto"})
        configs[f"threads only (fp32, {tuned.threads} threads)"] = dict(threads=None, options={"precision": "fp32"})
    load0 = os.getloadavg()
    engines = {name: Engine(decoders=1, workers=1, ops=OPS, **kw) for name, kw in configs.items()}
    figures: dict[str, dict[str, list[float]]] = {n: {"fps": [], "cpu_ms": []} for n in engines}
    last: dict[str, list[dict]] = {}
    try:
        for name, eng in engines.items():  # warm-up (and the models each one runs)
            run(eng, bodies[:1])
        for r in range(args.rounds):
            for name, eng in (engines.items() if r % 2 == 0 else reversed(list(engines.items()))):
                wall, cpu, frames, res = run(eng, bodies)
                figures[name]["fps"].append(frames / wall)
                figures[name]["cpu_ms"].append(1000 * cpu / frames)
                last[name] = res
                print(f"round {r}: {name}: {frames} frames, {frames / wall:.2f} frames/s, "
                      f"worker {1000 * cpu / frames:.1f} CPU ms/frame", flush=True)
    finally:
        for eng in engines.values():
            eng.close()
    base, new = list(engines)[:2]
    med = {n: {k: statistics.median(v) for k, v in f.items()} for n, f in figures.items()}
    report = {
        "command": "python bench/bench_int8.py " + " ".join(argv),
        "pulp": "params.other.ensemble default (cascade) in every configuration",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": machine_cores(),
                    "load_avg_start": load0, "load_avg_end": os.getloadavg()},
        "tuning": tuned.describe(),
        "median": med,
        "fps_ratio": round(med[new]["fps"] / med[base]["fps"], 2),
        "cpu_per_frame_ratio": round(med[base]["cpu_ms"] / med[new]["cpu_ms"], 2),
        "agreement": agreement(last[base], last[new]),
        "fps_ratio_vs_baseline": {n: round(m["fps"] / med[base]["fps"], 2) for n, m in med.items()},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
