"""The GPU runner (runtime/gpu.py): pure parts and array code everywhere (numpy standing in for CuPy), the
CUDA parts only where CuPy, a GPU and onnxruntime's CUDA provider are present (``bench/device_check.sh``)."""

from __future__ import annotations

import numpy as np
import pytest

from argus_core.runtime import gpu
from argus_core.runtime.manifest import MODELS_DIR, fixed_image, load_manifest, to_tensor

NO_CUDA = gpu.cuda_ready()
cuda = pytest.mark.skipif(bool(NO_CUDA), reason=f"needs CUDA: {NO_CUDA}")


def test_imports_without_cupy():
    import sys

    assert "cupy" not in sys.modules or not NO_CUDA  # importing the module never pulls CuPy in


@pytest.mark.parametrize("n, max_batch, want", [
    (0, 64, []),
    (1, 64, [(0, 1, 1)]),
    (5, 64, [(0, 5, 8)]),
    (64, 64, [(0, 64, 64)]),
    (70, 64, [(0, 64, 64), (64, 6, 8)]),
    (20, 12, [(0, 12, 12), (12, 8, 8)]),  # max_batch not a listed size: itself is allowed
    (3, 2, [(0, 2, 2), (2, 1, 1)]),
])
def test_plan_batches(n, max_batch, want):
    assert [(p.start, p.count, p.padded) for p in gpu.plan_batches(n, max_batch)] == want


def test_plan_batches_rejects_nonsense():
    with pytest.raises(ValueError):
        gpu.plan_batches(3, 0)


@pytest.mark.parametrize("slots, runs", [
    ([], []),
    ([3], [(3, 1)]),
    ([4, 5, 6, 9, 10, 2], [(4, 3), (9, 2), (2, 1)]),
    ([7, 6], [(7, 1), (6, 1)]),
])
def test_copy_runs(slots, runs):
    assert gpu.copy_runs(slots) == runs


@pytest.mark.parametrize("delta, want", [(0.0, "float16"), (1e-3, "float16"), (0.05, "float32"),
                                         (np.nan, "float32")])
def test_choose_dtype(delta, want):
    ref = [np.linspace(-1, 1, 20, dtype=np.float32)]
    got = [ref[0] + np.float32(delta)]
    assert gpu.choose_dtype(ref, got, atol=2e-3) == want


def test_choose_dtype_without_fp16_run():
    assert gpu.choose_dtype([np.zeros(3)], None, 2e-3) == "float32"
    assert gpu.choose_dtype([np.zeros(3)], [np.zeros(4)], 2e-3) == "float32"


def test_providers_for(tmp_path):
    p = gpu.providers_for(["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
                          device_id=1, cache_dir=tmp_path, fp16=True)
    assert [x if isinstance(x, str) else x[0] for x in p] == [
        "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = p[0][1]
    assert trt["trt_engine_cache_enable"] and trt["trt_engine_cache_path"] == str(tmp_path)
    assert trt["trt_fp16_enable"] is True and trt["device_id"] == 1
    only_cuda = gpu.providers_for(["CUDAExecutionProvider", "CPUExecutionProvider"], prefer_tensorrt=True)
    assert only_cuda[0][0] == "CUDAExecutionProvider"
    with pytest.raises(Exception, match="GPU execution provider"):
        gpu.providers_for(["CPUExecutionProvider"])


def test_resize_bilinear_matches_opencv():
    cv2 = pytest.importorskip("cv2")
    img = fixed_image(97, 61)
    got = gpu.resize_bilinear(np, img[None], 40, 50)[0]
    want = cv2.resize(img, (50, 40), interpolation=cv2.INTER_LINEAR).astype(np.float32)
    # OpenCV works in fixed point (11-bit weights): a pixel level at most
    assert got.shape == (40, 50, 3) and np.abs(got - want).max() <= 1.0
    up = gpu.resize_bilinear(np, img[None], 122, 194)[0]
    assert np.abs(up - cv2.resize(img, (194, 122), interpolation=cv2.INTER_LINEAR)).max() <= 1.0
    assert gpu.resize_bilinear(np, img[None], 61, 97)[0].dtype == np.float32


@pytest.mark.parametrize("model", ["nanodet", "mobilenetv2", "nsfwjs"])
def test_normalise_matches_host_to_tensor(model):
    spec = load_manifest(MODELS_DIR / model).input
    images = np.stack([fixed_image(spec.width, spec.height), fixed_image(spec.width, spec.height)[::-1]])
    want = to_tensor(images, spec)
    got = gpu.normalise(np, images, spec)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    half = gpu.normalise(np, images, spec, "float16")
    assert half.dtype == np.float16 and np.abs(half.astype(np.float32) - want).max() < 1e-2


def test_slot_views_match_the_ring():
    from argus_core.pipeline.ring import FrameRing

    with FrameRing.create(4, 3 * 64 * 48 * 3 + 4096) as ring:
        shapes = [(48, 64, 3), (24, 32, 3)]
        for slot in range(4):
            ring.write_meta(slot, job=1, seq=slot, offset_ms=slot, src=(64, 48), shapes=shapes)
            for v in ring.views(slot):
                v[:] = slot
        data = ring.data()
        batch = data[[2, 3]]  # what one run copies
        off = int(ring._header[2]["views"][1][3])
        views = gpu.slot_views(np, batch, (24, 32, 3), off)
        assert views.shape == (2, 24, 32, 3) and (views[0] == 2).all() and (views[1] == 3).all()
        del views, batch, data


# -- CUDA only -----------------------------------------------------------------------------------------------
@cuda
def test_pinned_ring_copies_runs():
    import cupy

    from argus_core.pipeline.ring import FrameRing

    with FrameRing.create(8, 4096) as ring:
        data = ring.data()
        data[:] = np.arange(8, dtype=np.uint8)[:, None]
        pinned = gpu.PinnedRing(data)
        try:
            dev = pinned.to_device([5, 6, 1])
            cupy.cuda.get_current_stream().synchronize()
            host = cupy.asnumpy(dev)
            assert (host[:, 0] == [5, 6, 1]).all() and (host[0] == 5).all()
        finally:
            pinned.close()
        del data


@cuda
@pytest.mark.parametrize("model", ["nsfwjs", "mobilenetv2", "nanodet"])
def test_cuda_model_matches_cpu(model, tmp_path):
    """IO-bound CUDA run (fp32 and, where chosen, fp16) within the model's check tolerance of the CPU run."""
    import cupy

    from argus_core.runtime.session import Model

    folder = MODELS_DIR / model
    cpu = Model(folder)
    spec = cpu.manifest.input
    images = np.stack([fixed_image(spec.width, spec.height)] * 3)
    want = cpu.run_images(images)
    for fp16 in ("off", "auto"):
        dev = gpu.CudaModel(folder, fp16=fp16, cache_dir=tmp_path, prefer_tensorrt=False)
        got = dev.run_images(cupy.asarray(images))
        tol = cpu.manifest.check.atol if dev.dtype == "float32" else 5 * cpu.manifest.check.atol
        for a, b in zip(want, got):
            np.testing.assert_allclose(b, a, atol=tol, rtol=1e-3)


@cuda
def test_cuda_model_resizes_on_device(tmp_path):
    import cupy

    folder = MODELS_DIR / "nsfwjs"
    dev = gpu.CudaModel(folder, fp16="off", cache_dir=tmp_path, prefer_tensorrt=False)
    big = np.stack([fixed_image(1920, 1080)] * 2)
    x = dev.tensor(cupy.asarray(big))
    assert x.shape == (2, 224, 224, 3) and x.dtype == cupy.float32
    probs = dev.run_device(x)[0]
    assert probs.shape == (2, 5) and np.allclose(probs.sum(axis=1), 1, atol=1e-3)
