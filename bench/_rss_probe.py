"""Peak memory of one analysis, whole process tree: ``python bench/_rss_probe.py FILE MODE INTERVAL``.

Runs in a fresh interpreter so nothing from earlier benchmarks inflates the figures. Starts an Engine
(1 decoder, 1 worker), runs one ``analyze`` with ``pulp``, and prints one JSON line with:

- ``tree_peak_kb``: the largest *simultaneous* sum of VmRSS over this process and all its descendants,
  sampled every 20 ms by a thread during the analysis (start-up included);
- ``hwm_sum_kb``: the sum of every process' own VmHWM (peak RSS) read just before the Engine closes — an
  upper bound of the tree's peak, which cannot miss a short spike between samples;
- ``per_process``: VmHWM of each process (parent, decoder, worker, resource tracker …);
- ``ru_maxrss_children_kb``: ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` after close (the largest single child).

RSS counts shared pages (the ring, libraries) in every process that touches them, the same way for both
videos, so ratios compare like with like.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import threading
import time


def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(("VmRSS:", "VmHWM:", "Name:")):
                    k, v = line.split(":", 1)
                    out[k] = v.strip() if k == "Name" else int(v.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return out


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def main() -> None:
    path, mode, interval = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    from argus_core import Engine

    peak = {"kb": 0}
    stop = threading.Event()

    def sampler() -> None:
        while not stop.is_set():
            total = sum(_status(p).get("VmRSS", 0) for p in _descendants(os.getpid()))
            peak["kb"] = max(peak["kb"], total)
            stop.wait(0.02)

    th = threading.Thread(target=sampler, daemon=True)
    th.start()
    t0 = time.perf_counter()
    engine = Engine(decoders=1, workers=1, ops=["pulp"])
    t_start = time.perf_counter() - t0
    vf = {"mode": mode} if mode == 1 else {"mode": 0, "interval": interval}
    t1 = time.perf_counter()
    result = engine.analyze({"data": {"uri": path}, "params": {"vframe": vf}, "ops": [{"op": "pulp"}]})
    t_analyze = time.perf_counter() - t1
    stop.set()
    th.join()
    # which child is which
    roles = {os.getpid(): "parent"}
    for role, pids in engine.child_pids().items():
        for pid in pids:
            roles[pid] = role.rstrip("s")
    procs = []
    for p in _descendants(os.getpid()):
        st = _status(p)
        if st:
            procs.append({"pid": p, "role": roles.get(p, "other"), "hwm_kb": st.get("VmHWM", 0),
                          "rss_kb": st.get("VmRSS", 0)})
    engine.close()
    cuts = sum(len(s.get("cuts", [])) for s in result["pulp"]["segments"])
    print(json.dumps({
        "path": path, "mode": mode, "interval": interval, "cuts": cuts,
        "labels": result["pulp"]["labels"], "t_start": t_start, "t_analyze": t_analyze,
        "tree_peak_kb": peak["kb"], "hwm_sum_kb": sum(p["hwm_kb"] for p in procs),
        "per_process": procs,
        "ru_maxrss_children_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "ru_maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
