"""ms per frame of detection's two models, NanoDet-m 416 and CenterNet 512 (model + decode, no NMS), in one
process, interleaved, 1 intra-op thread, batch 1 and 4 (models/EVAL.md, "CenterNet or NanoDet").

    flock /tmp/argus-bench.lock python -m bench.bench_detection_models
"""

from __future__ import annotations

import time

import numpy as np

from argus_core.media.renditions import FrameSpec, letterbox
from argus_core.ops.detection import SCORE_FLOOR, CenterNet, Detector, NanoDet
from argus_core.post.heads import decode_centernet
from argus_core.runtime.manifest import MODELS_DIR, to_tensor
from argus_core.runtime.session import Model
from tests.test_ops_vision import photo, resize

PHOTOS = ("astronaut", "coffee", "camera", "motorcycle")


def batch(d: Detector, n: int) -> np.ndarray:
    """The first ``n`` photos as the op feeds them: letterboxed at the model size, top-left, pad 114."""
    out = []
    for im in (photo(p) for p in PHOTOS[:n]):
        w, h = FrameSpec(d.input_w, d.input_h, "letterbox").size_for(im.shape[1], im.shape[0])
        out.append(letterbox(resize(im, w, h), d.input_w, d.input_h, d.pad_value)[0])
    return np.stack(out)


def main() -> int:
    dets: dict[str, Detector] = {"nanodet": NanoDet(Model(MODELS_DIR / "nanodet", threads=1)),
                                 "centernet": CenterNet(Model(MODELS_DIR / "centernet", threads=1))}
    res: dict[tuple[str, int], list[float]] = {}
    for _ in range(2):  # two interleaved rounds: both models see the same machine load
        for name, d in dets.items():
            for n in (1, 4):
                b = batch(d, n)
                d._decode_batch(b)
                ts = []
                for _ in range(5):
                    t = time.perf_counter()
                    d._decode_batch(b)
                    ts.append(time.perf_counter() - t)
                res.setdefault((name, n), []).append(min(ts) * 1000 / n)
    for (name, n), v in res.items():
        print(f"{name} batch {n}: {min(v):.1f} ms/frame (model + decode)")
    cn = dets["centernet"]
    assert isinstance(cn, CenterNet)
    heat, wh = cn.model.run(to_tensor(batch(cn, 1), cn.model.manifest.input), [cn.heat_output, cn.box_output])
    ts = []
    for _ in range(10):
        t = time.perf_counter()
        decode_centernet(heat[0], wh[0], cn.stride, SCORE_FLOOR)
        ts.append(time.perf_counter() - t)
    print(f"centernet decode alone (peaks + top-100): {min(ts) * 1000:.2f} ms/frame")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
