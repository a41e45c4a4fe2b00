"""Gallery search speed: one query and a batch of queries against 100k enrolled faces (exact cosine).

    .venv/bin/python bench/bench_gallery.py [--faces 100000] [--batch 32] [--rounds 15] [--dir DIR]

Builds a gallery of random unit 1024-D descriptors on disk through :class:`argus_core.faces.gallery.GalleryStore`
(the real format: 8192-row float32 shards, memory-mapped), then times, interleaved round by round:

- ``search_1``: :meth:`Gallery.search` of one query (top-16 per shard, best match, review flag);
- ``matmul_1``: the floor for it, a bare ``matrix @ q`` + ``argmax`` on one contiguous in-RAM matrix;
- ``search_batch``: :meth:`Gallery.search` of ``--batch`` queries at once (reported per query too);

plus the one-off costs: writing the gallery, the first load (index + mmap), adding one face to the full
gallery (rewrites one shard + the index) and the reload a worker then does. Prints one JSON object.
Checks its own answers: every query is a noisy copy of a known face and must find it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from argus_core.faces.gallery import GalleryStore  # noqa: E402


def median_ms(ts: list[float]) -> float:
    return round(statistics.median(ts) * 1000, 3)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--dir", default=None, help="where to build the gallery (default: a temp folder)")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(0)
    n, dim = args.faces, 1024
    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="argus-bench-gallery-"))
    try:
        vecs = rng.standard_normal((n, dim), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        store = GalleryStore(root)
        store.create_group("bench")
        t0 = time.perf_counter()
        step = 20_000
        for k in range(0, n, step):
            store.add_embeddings("bench", vecs[k : k + step], [f"person{i // 3}" for i in range(k, min(k + step, n))],
                                 ids=[f"f{i}" for i in range(k, min(k + step, n))])
        t_write = time.perf_counter() - t0

        reader = GalleryStore(root)
        t0 = time.perf_counter()
        g = reader.gallery("bench")
        t_load = time.perf_counter() - t0

        # queries: noisy copies of known faces (cosine ≈ 0.9 to their source)
        want = rng.integers(0, n, size=args.rounds * (1 + args.batch) + 1)
        noise = rng.standard_normal((len(want), dim), dtype=np.float32) * 0.015
        queries = vecs[want] + noise
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)

        dense = np.ascontiguousarray(g.matrix())  # in-RAM copy for the bare baseline
        t_search, t_matmul, t_batch = [], [], []
        ok = True
        qi = 0
        g.search(queries[:1])  # warm-up (page cache, BLAS threads)
        for _ in range(args.rounds):
            q = queries[qi : qi + 1]
            t0 = time.perf_counter()
            m = g.search(q)[0]
            t_search.append(time.perf_counter() - t0)
            ok &= m.id == f"f{want[qi]}" and m.matched
            t0 = time.perf_counter()
            best = int(np.argmax(dense @ q[0]))
            t_matmul.append(time.perf_counter() - t0)
            ok &= best == want[qi]
            qi += 1
            qb = queries[qi : qi + args.batch]
            t0 = time.perf_counter()
            ms = g.search(qb)
            t_batch.append(time.perf_counter() - t0)
            ok &= all(mm.id == f"f{w}" for mm, w in zip(ms, want[qi : qi + args.batch]))
            qi += args.batch

        # one more face on a full gallery, and the reload a worker does on its next batch
        t0 = time.perf_counter()
        store.add_embeddings("bench", queries[-1], ["newcomer"], ids=["new"])
        t_add = time.perf_counter() - t0
        t0 = time.perf_counter()
        g2 = reader.gallery("bench")
        t_reload = time.perf_counter() - t0
        ok &= len(g2) == n + 1 and g2.search(queries[-1])[0].id == "new"
        t0 = time.perf_counter()
        reader.gallery("bench")
        t_check = time.perf_counter() - t0

        out = {
            "faces": n, "dim": dim, "batch": args.batch, "rounds": args.rounds, "correct": bool(ok),
            "cpu_count": os.cpu_count(), "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
            "search_1_ms": median_ms(t_search),
            "matmul_1_ms": median_ms(t_matmul),
            "search_batch_ms": median_ms(t_batch),
            "search_batch_per_query_ms": round(median_ms(t_batch) / args.batch, 3),
            "write_gallery_s": round(t_write, 2),
            "first_load_ms": round(t_load * 1000, 1),
            "add_one_face_ms": round(t_add * 1000, 1),
            "reload_after_add_ms": round(t_reload * 1000, 1),
            "unchanged_check_ms": round(t_check * 1000, 3),
        }
        print(json.dumps(out, indent=2))
        return out
    finally:
        if not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(0 if main()["correct"] else 1)
