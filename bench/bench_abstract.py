"""A full 4-layer abstract (one decode pass + the ops on ≤ 3 frames per shot, in-process) of the constructed
720p set, once as built and once looped ``--loops`` times (``-c copy``): wall time as a fraction of the video's
duration, and the peak RSS of a fresh process per file (memory flat in the length means the looped file peaks
where the short one does).

    cd <repo> && python -m bench.bench_abstract [--size 1280x720] [--loops 4]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from tests import abstract_media as am

CHILD = """
import json, os, resource, sys, time
from argus_core.abstract import run
page = os.sysconf("SC_PAGE_SIZE")
def rss_mb():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * page / 2**20
m = run.shared_models()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
marks = {}
def progress(p):
    for q in (25, 50, 75, 90):
        if p.percent >= q and q not in marks:
            marks[q] = round(rss_mb())
t0 = time.perf_counter()
a = run.analyse(sys.argv[1], run.Options(layers=(0, 1, 2, 3)), models=m, progress=progress)
body = run.build_response(a, "bench", run.Options(layers=(0, 1, 2, 3)))
t = time.perf_counter() - t0
print(json.dumps({"wall": t, "duration": a.duration_ms / 1000, "shots": len(a.shots),
                  "items": len(body["clipResults"]), "rss_models_mb": rss0 / 1024, "rss_at": marks,
                  "ocr_gate": [m.gate_runs, m.gate_fired], "heap_trims": run._release_heap.trims,
                  "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

def looped(src: Path, n: int) -> Path:
    out = src.with_name(f"{src.stem}-x{n}.mp4")
    if not out.exists():
        lst = src.with_name(f"{src.stem}-x{n}.txt")
        lst.write_text("".join(f"file '{src}'\n" for _ in range(n)))
        subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0",
                        "-i", str(lst), "-c", "copy", str(out)], check=True, timeout=300)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--loops", type=int, default=4)
    ap.add_argument("files", nargs="*", help="measure these files instead of the constructed set (e.g. the "
                    "5/15/30/60-min concatenations of RESULTS.md)")
    a = ap.parse_args()
    size = tuple(int(v) for v in a.size.split("x"))
    if a.files:
        files = [Path(f) for f in a.files]
    else:
        base = am.build_mixed(size).path
        files = [base, looped(base, a.loops)]
    print("| file | length s | shots | OCR gate fired | wall s | wall / length | RSS after models MB "
          "| RSS at 25/50/75/90 % MB | peak RSS MB | heap trims |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for f in files:
        out = subprocess.run([sys.executable, "-c", CHILD, str(f)], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        at = "/".join(str(r["rss_at"].get(str(q), "-")) for q in (25, 50, 75, 90))
        g = r["ocr_gate"]
        print(f"| {f.name} | {r['duration']:.1f} | {r['shots']} | {g[1]}/{g[0]} | {r['wall']:.2f} "
              f"| {r['wall'] / r['duration']:.3f} | {r['rss_models_mb']:.0f} | {at} | {r['rss_peak_mb']:.0f} | {r['heap_trims']} |",
              flush=True)


if __name__ == "__main__":
    main()
