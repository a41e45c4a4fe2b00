"""Shots-only analysis: our detector (coarse 64×36 pass + dense refinement of cuts) vs PySceneDetect's
AdaptiveDetector (decodes every frame), same files, same run. Prints wall time, speed ratio and boundary F1.

    cd <repo> && python -m bench.bench_shots [--size 1280x720] [--step 0.1]
"""

from __future__ import annotations

import argparse
import time

from argus_core.abstract.drive import detect_shots
from tests import abstract_media as am


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--step", type=float, default=0.1)
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.split("x"))
    rows = []
    for build in (am.build_mixed, am.build_gradual):
        b = build(size)
        t0 = time.perf_counter()
        r = detect_shots(str(b.path), a.step)
        t1 = time.perf_counter()
        ps = am.pyscenedetect_cuts(b.path)
        t2 = time.perf_counter()
        o = am.match([(x.start_ms / 1000, x.end_ms / 1000) for x in r.boundaries], b.truth)
        p = am.match([(c, c) for c in ps], b.truth)
        rows.append((b.path.name, b.duration, t1 - t0, t2 - t1, o, p))
    print(f"| file ({a.size}, {am.FPS} fps) | length s | ours s | PySceneDetect s | speed ratio "
          f"| ours F1 (tp/fp/fn) | Adaptive F1 (tp/fp/fn) |")
    print("|---|---|---|---|---|---|---|")
    for name, dur, to, tp, o, p in rows:
        print(f"| {name} | {dur:.1f} | {to:.2f} | {tp:.2f} | {tp / to:.2f}× | {am.f1(*o):.3f} ({o[0]}/{o[1]}/{o[2]}) "
              f"| {am.f1(*p):.3f} ({p[0]}/{p[1]}/{p[2]}) |")
    tot_o = [sum(r[4][k] for r in rows) for k in range(3)]
    tot_p = [sum(r[5][k] for r in rows) for k in range(3)]
    print(f"| **all** | {sum(r[1] for r in rows):.1f} | {sum(r[2] for r in rows):.2f} | "
          f"{sum(r[3] for r in rows):.2f} | {sum(r[3] for r in rows) / sum(r[2] for r in rows):.2f}× | "
          f"{am.f1(*tot_o):.3f} | {am.f1(*tot_p):.3f} |")


if __name__ == "__main__":
    main()
