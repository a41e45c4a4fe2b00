"""GPU figures for issue 14 (run by ``bench/device_check.sh`` on a lent machine; nothing here runs on a CPU
box). Each section runs on its own and records its error instead of stopping the others:

* ``models``: frames/s per model (nsfwjs, mobilenetv2, nanodet) at batch 1 / 8 / 64, IO binding, with the
  dtype :class:`argus_core.runtime.gpu.CudaModel` chose (fp16 only within the fp32 check tolerance) and
  the provider it got (TensorRT / CUDA);
* ``preprocess_share``: for pulp and detection at batch 64 from 1080p uint8 frames, (a) the CuPy path
  (one host→device copy of uint8 slots, resize + normalise on the GPU) and (b) the numpy path (resize and
  normalise on the host, float32 copied by onnxruntime), each as a share of pure model time;
* ``ring_pulp``: pulp frames/s end to end from decoded 1080p frames in a pinned FrameRing (copy of a run
  of slots, GPU resize to 224², nsfwjs, results to the host) — the issue's ≥ 2,000 frames/s target;
* ``e2e_1080p``: pulp + detection on the same ring batches (both renditions made on the GPU).

    python bench/bench_gpu.py --out figures.json [--seconds 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from argus_core.runtime import gpu  # noqa: E402
from argus_core.runtime.manifest import MODELS_DIR, fixed_image, to_tensor  # noqa: E402

MODELS = ("nsfwjs", "mobilenetv2", "nanodet")


def timed(fn, seconds: float) -> float:
    """Calls per second of ``fn`` (synchronised), after 3 warm-up calls."""
    import cupy

    for _ in range(3):
        fn()
    cupy.cuda.Device().synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    cupy.cuda.Device().synchronize()
    return n / (time.perf_counter() - t0)


def frames_1080p(n: int) -> np.ndarray:
    """``n`` different 1080p RGB frames: real footage (bigbuckbunny, decoded with OpenCV there and
    scaled to 1920×1080) when available, else the test card shifted per frame."""
    try:
        import cv2

        from tests.data import footage

        cap = cv2.VideoCapture(str(footage("bigbuckbunny")))
        out = []
        while len(out) < n:
            ok, bgr = cap.read()
            if not ok:
                break
            out.append(cv2.resize(bgr, (1920, 1080), interpolation=cv2.INTER_LINEAR)[..., ::-1])
        if len(out) == n:
            return np.stack(out)
    except Exception:
        pass
    card = fixed_image(1920, 1080)
    return np.stack([np.roll(card, i * 7, axis=1) for i in range(n)])


def section_models(fig: dict, seconds: float, cache: Path) -> None:
    import cupy

    for name in MODELS:
        m = gpu.CudaModel(MODELS_DIR / name, fp16="auto", cache_dir=cache)
        i = m.manifest.input
        row = {"dtype": m.dtype, "provider": m.provider}
        for b in (1, 8, 64):
            x = m.tensor(cupy.asarray(np.repeat(fixed_image(i.width, i.height)[None], b, axis=0)))
            row[f"batch{b}_fps"] = round(b * timed(lambda: m.run_device(x), seconds), 1)
        fig["models"][name] = row


def section_preprocess(fig: dict, seconds: float, cache: Path) -> None:
    import cupy

    big = frames_1080p(64)
    big_dev = cupy.asarray(big)
    for name in ("nsfwjs", "nanodet"):
        m = gpu.CudaModel(MODELS_DIR / name, fp16="off", cache_dir=cache)
        i = m.manifest.input
        x = m.tensor(big_dev)
        model = timed(lambda: m.run_device(x), seconds)
        pinned = cupy.cuda.alloc_pinned_memory(big.nbytes)
        host = np.frombuffer(pinned, np.uint8, big.size).reshape(big.shape)
        host[:] = big

        def cupy_path():
            return m.run_device(m.tensor(cupy.asarray(host)))

        import cv2

        def numpy_path():
            small = np.stack([cv2.resize(f, (i.width, i.height), interpolation=cv2.INTER_LINEAR) for f in big])
            return m.session.run(m.output_names, {m.input_name: to_tensor(small, i)})

        full_cupy, full_numpy = timed(cupy_path, seconds), timed(numpy_path, seconds)
        fig["preprocess_share"][name] = {
            "model_batches_per_s": round(model, 2),
            "cupy_path_share": round((1 / full_cupy - 1 / model) / (1 / model), 3),
            "numpy_path_share": round((1 / full_numpy - 1 / model) / (1 / model), 3),
            "target": "cupy share <= 0.15"}


def _ring(n_slots: int, frames: np.ndarray):
    from argus_core.pipeline.ring import FrameRing

    ring = FrameRing.create(n_slots, frames[0].nbytes)
    for s in range(n_slots):
        ring.write_meta(s, job=1, seq=s, offset_ms=s, src=(1920, 1080), shapes=[frames[0].shape])
        ring.view(s, 0)[:] = frames[s % len(frames)]
    return ring


def section_ring(fig: dict, seconds: float, cache: Path, batch: int = 64) -> None:
    ring = _ring(2 * batch, frames_1080p(16))
    pinned = None
    try:
        pinned = gpu.PinnedRing(ring.data())
        pulp = gpu.CudaModel(MODELS_DIR / "nsfwjs", fp16="auto", cache_dir=cache)
        det = gpu.CudaModel(MODELS_DIR / "nanodet", fp16="auto", cache_dir=cache)
        import cupy

        state = {"k": 0}

        def images():
            first = (state["k"] % 2) * batch  # alternate halves: a run of 64 consecutive slots each time
            state["k"] += 1
            dev = pinned.to_device(list(range(first, first + batch)))
            return gpu.slot_views(cupy, dev, (1080, 1920, 3), 0)

        fig["ring_pulp"] = {"batch": batch, "dtype": pulp.dtype,
                            "fps": round(batch * timed(lambda: pulp.run_images(images()), seconds), 1),
                            "target_fps": 2000}

        def both():
            imgs = images()
            pulp.run_images(imgs)
            det.run_images(imgs)

        fig["e2e_1080p"] = {"ops": ["pulp", "detection"], "batch": batch,
                            "fps": round(batch * timed(both, seconds), 1),
                            "note": "model outputs copied to the host; NanoDet decode/NMS on the host not included"}
    finally:
        if pinned is not None:
            pinned.close()
        ring.close()


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--cache", default="/tmp/argus-trt")
    args = ap.parse_args(argv)
    fig: dict = {"ready": gpu.cuda_ready() or "yes", "models": {}, "preprocess_share": {}, "errors": {}}
    try:
        import onnxruntime as ort

        fig["onnxruntime"] = {"version": ort.__version__, "providers": ort.get_available_providers()}
    except Exception as exc:
        fig["onnxruntime"] = str(exc)
    for name, fn in (("models", section_models), ("preprocess_share", section_preprocess),
                     ("ring", section_ring)):
        t0 = time.perf_counter()
        try:
            fn(fig, args.seconds, Path(args.cache))
        except Exception as exc:
            fig["errors"][name] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        fig.setdefault("section_s", {})[name] = round(time.perf_counter() - t0, 1)
        Path(args.out).write_text(json.dumps(fig, indent=2) + "\n")  # keep what we have
        print(json.dumps({name: fig.get(name), "error": fig["errors"].get(name)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
