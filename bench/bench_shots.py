"""Shots-only analysis: our detector vs PySceneDetect's AdaptiveDetector (decodes every frame), same files, same
run. Ours twice: the one-pass run of the abstracts (:func:`argus_core.abstract.run.analyse` with no models:
64×36 tap frames from the sampler, cuts refined on their window) and the older driver
(:func:`argus_core.abstract.drive.detect_shots`: one coarse pass + a dense pass per cut). Prints wall time,
speed ratios and boundary F1.

    cd <repo> && python -m bench.bench_shots [--size 1280x720] [--step 0.1] [--repeat 1]
"""

from __future__ import annotations

import argparse
import time

from argus_core.abstract import run
from argus_core.abstract.drive import detect_shots
from tests import abstract_media as am


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--step", type=float, default=0.1)
    ap.add_argument("--repeat", type=int, default=1, help="best of N per tool, run round robin (a shared box is noisy)")
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.split("x"))
    rows = []
    for build in (am.build_mixed, am.build_gradual):
        b = build(size)

        tools = {"one": lambda: run.analyse(str(b.path), run.Options(features=False, tap_step_s=a.step)),
                 "two": lambda: detect_shots(str(b.path), a.step),
                 "psd": lambda: am.pyscenedetect_cuts(b.path)}
        out: dict = {}
        best = {k: float("inf") for k in tools}
        for _ in range(a.repeat):      # round robin: load from other jobs on the box hits every tool alike
            for k, fn in tools.items():
                t0 = time.perf_counter()
                out[k] = fn()
                best[k] = min(best[k], time.perf_counter() - t0)
        one, two, ps = out["one"], out["two"], out["psd"]
        t_one, t_two, t_ps = best["one"], best["two"], best["psd"]
        m_one = am.match([(x.start_ms / 1000, x.end_ms / 1000) for x in one.boundaries], b.truth)
        m_two = am.match([(x.start_ms / 1000, x.end_ms / 1000) for x in two.boundaries], b.truth)
        m_ps = am.match([(c, c) for c in ps], b.truth)
        rows.append((b.path.name, b.duration, t_one, t_two, t_ps, m_one, m_two, m_ps))
    print(f"| file ({a.size}, {am.FPS} fps, step {a.step} s) | length s | one-pass s | two-pass s | PySceneDetect s "
          f"| PSD / one-pass | PSD / two-pass | one-pass F1 (tp/fp/fn) | two-pass F1 | Adaptive F1 (tp/fp/fn) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, dur, t1, t2, tp, m1, m2, mp in rows:
        print(f"| {name} | {dur:.1f} | {t1:.2f} | {t2:.2f} | {tp:.2f} | {tp / t1:.2f}× | {tp / t2:.2f}× "
              f"| {am.f1(*m1):.3f} ({m1[0]}/{m1[1]}/{m1[2]}) | {am.f1(*m2):.3f} "
              f"| {am.f1(*mp):.3f} ({mp[0]}/{mp[1]}/{mp[2]}) |")
    tot = [sum(r[k] for r in rows) for k in (1, 2, 3, 4)]
    f1s = [am.f1(*[sum(r[k][j] for r in rows) for j in range(3)]) for k in (5, 6, 7)]
    print(f"| **all** | {tot[0]:.1f} | {tot[1]:.2f} | {tot[2]:.2f} | {tot[3]:.2f} | {tot[3] / tot[1]:.2f}× "
          f"| {tot[3] / tot[2]:.2f}× | {f1s[0]:.3f} | {f1s[1]:.3f} | {f1s[2]:.3f} |")


if __name__ == "__main__":
    main()
