"""The GPU model runner: ring slots → one host→device copy → CuPy resize/normalise → onnxruntime IO binding.

**Status: written and unit-tested on the CPU only** (the pure parts below, and the array code with numpy
standing in for CuPy). No GPU has run it yet: ``bench/device_check.sh`` runs its CUDA tests and benchmarks
on the first task that is lent a machine (issue 14). Until then the worker keeps the host runner
(:class:`argus_core.runtime.session.Model`) on every device.

Pieces, in data-flow order:

* :class:`PinnedRing` registers the ring's shared memory as pinned host memory
  (``cupy.cuda.runtime.hostRegister``), so copies from it run at full PCIe/NVLink speed, asynchronously.
* :func:`copy_runs` plans the batch's transfer: consecutive slots form one run, and each run is ONE
  ``cudaMemcpyAsync`` of ``count × slot_bytes`` (the decoder hands out slots in order, so a batch is
  usually one run).
* :func:`resize_bilinear` + :func:`normalise` (array-module generic: ``xp`` is ``cupy`` on the GPU, numpy in
  the tests) turn the uint8 renditions into the model tensor on the device, in the model's layout, dtype
  and channel order.
* :class:`CudaModel` binds that device buffer as the input (``bind_input`` with its pointer), binds the
  outputs on the device, runs, and copies only the outputs back. fp16 is used where :func:`choose_dtype`
  finds the fp16 outputs within the model's fp32 check tolerance; the execution provider is TensorRT when
  present (engine cache on disk, :func:`providers_for`), else CUDA.
* :func:`plan_batches` cuts a queue of frames into batches padded to a few fixed sizes, so TensorRT
  builds one engine per size instead of one per batch length.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import msgspec
import numpy as np

from .manifest import InputSpec, Manifest, ModelError, load_manifest, model_path, verify

log = logging.getLogger("argus.gpu")

#: batch sizes engines are built for (TensorRT profiles; the CUDA EP does not care)
BATCH_SIZES = (1, 8, 16, 32, 64, 128)
#: where TensorRT keeps its engines (one per model × batch size × GPU), override with ARGUS_TRT_CACHE
DEFAULT_ENGINE_CACHE = Path(os.environ.get("ARGUS_TRT_CACHE") or Path.home() / ".cache" / "argus-trt")


# -- pure parts (run everywhere) -----------------------------------------------------------------------------
class BatchPlan(msgspec.Struct, frozen=True):
    start: int  # first item of the queue in this batch
    count: int  # real items
    padded: int  # batch size the model runs (count rounded up to a BATCH_SIZES entry)


def plan_batches(n: int, max_batch: int, sizes: Sequence[int] = BATCH_SIZES) -> list[BatchPlan]:
    """Cut ``n`` queued items into batches of at most ``max_batch``, each padded up to the smallest of
    ``sizes`` that holds it (``max_batch`` itself when none does)."""
    if n < 0 or max_batch < 1:
        raise ValueError("n must be >= 0 and max_batch >= 1")
    allowed = sorted(s for s in sizes if s <= max_batch) or [max_batch]
    if allowed[-1] != max_batch:
        allowed.append(max_batch)
    out, start = [], 0
    while start < n:
        count = min(max_batch, n - start)
        out.append(BatchPlan(start, count, next(s for s in allowed if s >= count)))
        start += count
    return out


def copy_runs(slots: Sequence[int]) -> list[tuple[int, int]]:
    """``(first slot, count)`` runs of consecutive slot indexes, in the batch's order: one host→device copy
    each. ``[4, 5, 6, 9, 10, 2]`` → ``[(4, 3), (9, 2), (2, 1)]``."""
    runs: list[tuple[int, int]] = []
    for s in slots:
        if runs and runs[-1][0] + runs[-1][1] == s:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((int(s), 1))
    return runs


def choose_dtype(ref: Sequence[np.ndarray], fp16: Sequence[np.ndarray] | None, atol: float) -> str:
    """"float16" when every fp16 output is within ``atol`` of the fp32 one (absolute, plus 1e-3 relative:
    the same rule as the manifest check), else "float32"; "float32" when there is no fp16 run."""
    if fp16 is None or len(ref) != len(fp16):
        return "float32"
    for a, b in zip(ref, fp16):
        a32, b32 = np.asarray(a, np.float32), np.asarray(b, np.float32)
        if a32.shape != b32.shape or not np.all(np.isfinite(b32)):
            return "float32"
        if not np.allclose(b32, a32, atol=atol, rtol=1e-3):
            return "float32"
    return "float16"


def providers_for(available: Iterable[str], device_id: int = 0, cache_dir: Path | None = None,
                  fp16: bool = False, prefer_tensorrt: bool = True) -> list[Any]:
    """Execution providers in preference order: TensorRT (engine + timing cache on disk, fp16 if chosen),
    CUDA, then the CPU for any node neither takes."""
    available = list(available)
    cache = str(cache_dir or DEFAULT_ENGINE_CACHE)
    out: list[Any] = []
    if prefer_tensorrt and "TensorrtExecutionProvider" in available:
        out.append(("TensorrtExecutionProvider", {
            "device_id": device_id, "trt_fp16_enable": fp16, "trt_engine_cache_enable": True,
            "trt_engine_cache_path": cache, "trt_timing_cache_enable": True, "trt_timing_cache_path": cache}))
    if "CUDAExecutionProvider" in available:
        out.append(("CUDAExecutionProvider", {"device_id": device_id, "arena_extend_strategy": "kSameAsRequested",
                                              "cudnn_conv_algo_search": "HEURISTIC"}))
    if not out:
        raise ModelError("no GPU execution provider in this onnxruntime (pip install 'argus[gpu]')")
    return out + ["CPUExecutionProvider"]


# -- array code (xp = cupy on the GPU, numpy in tests) -----------------------------------------------------
def resize_bilinear(xp: Any, images: Any, out_h: int, out_w: int) -> Any:
    """``[N,H,W,C]`` uint8 → ``[N,out_h,out_w,C]`` float32, bilinear with half-pixel centres (as swscale's
    and OpenCV's ``INTER_LINEAR`` upscaling; downscaling by more than 2× reads no area average)."""
    n, h, w, c = images.shape
    if (h, w) == (out_h, out_w):
        return images.astype(xp.float32)
    ys = (xp.arange(out_h, dtype=xp.float32) + 0.5) * (h / out_h) - 0.5
    xs = (xp.arange(out_w, dtype=xp.float32) + 0.5) * (w / out_w) - 0.5
    ys, xs = xp.clip(ys, 0, h - 1), xp.clip(xs, 0, w - 1)
    y0, x0 = xp.floor(ys).astype(xp.int32), xp.floor(xs).astype(xp.int32)
    y1, x1 = xp.minimum(y0 + 1, h - 1), xp.minimum(x0 + 1, w - 1)
    wy, wx = (ys - y0)[None, :, None, None], (xs - x0)[None, None, :, None]
    img = images.astype(xp.float32)
    top = img[:, y0][:, :, x0] * (1 - wx) + img[:, y0][:, :, x1] * wx
    bot = img[:, y1][:, :, x0] * (1 - wx) + img[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bot * wy


def normalise(xp: Any, images: Any, spec: InputSpec, dtype: str = "float32") -> Any:
    """The model tensor from ``[N,H,W,3]`` RGB pixels (uint8 or float): channel order, layout and
    ``(x − mean) / std`` as :func:`argus_core.runtime.manifest.to_tensor` does on the host."""
    x = images
    if spec.color == "BGR":
        x = x[..., ::-1]
    if spec.dtype != "float32":
        x = xp.ascontiguousarray(x.transpose(0, 3, 1, 2) if spec.layout == "NCHW" else x)
        return x.astype(xp.uint8)
    mean = xp.asarray(spec.mean, dtype=xp.float32)
    inv_std = 1.0 / xp.asarray(spec.std, dtype=xp.float32)
    x = (x.astype(xp.float32) - mean) * inv_std
    if spec.layout == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    return xp.ascontiguousarray(x.astype(xp.float16 if dtype == "float16" else xp.float32))


# -- CUDA-only parts ---------------------------------------------------------------------------------------
def cuda_ready() -> str:
    """'' when CuPy, a GPU and onnxruntime's CUDA provider are all here; else what is missing."""
    try:
        import cupy
    except ImportError:
        return "cupy is not installed (pip install 'argus[gpu]')"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return "no CUDA device"
    except Exception as exc:  # CUDA driver missing
        return f"CUDA unavailable: {exc}"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
    return ""


class PinnedRing:
    """The ring's slot data registered as pinned host memory, and copies of slot runs to the device."""

    def __init__(self, data: np.ndarray, device_id: int = 0) -> None:
        import cupy

        if data.ndim != 2 or not data.flags.c_contiguous:
            raise ValueError("ring data must be a C-contiguous [slots, slot_bytes] array")
        self.cupy, self.data, self.device_id = cupy, data, device_id
        self.slot_bytes = data.shape[1]
        self.ptr = data.ctypes.data
        with cupy.cuda.Device(device_id):
            cupy.cuda.runtime.hostRegister(self.ptr, data.nbytes, cupy.cuda.runtime.hostRegisterPortable)
        self.registered = True

    def to_device(self, slots: Sequence[int], stream: Any = None) -> Any:
        """``[len(slots), slot_bytes]`` uint8 on the device, one async copy per run of consecutive slots."""
        cp = self.cupy
        with cp.cuda.Device(self.device_id):
            out = cp.empty((len(slots), self.slot_bytes), dtype=cp.uint8)
            stream = stream or cp.cuda.get_current_stream()
            row = 0
            for first, count in copy_runs(slots):
                nbytes = count * self.slot_bytes
                cp.cuda.runtime.memcpyAsync(out.data.ptr + row * self.slot_bytes,
                                            self.ptr + first * self.slot_bytes, nbytes,
                                            cp.cuda.runtime.memcpyHostToDevice, stream.ptr)
                row += count
            return out

    def close(self) -> None:
        if self.registered:
            self.cupy.cuda.runtime.hostUnregister(self.ptr)
            self.registered = False


def slot_views(xp: Any, slots_dev: Any, shape: tuple[int, int, int], byte_offset: int) -> Any:
    """``[N,h,w,c]`` device view of one rendition inside each copied slot (no copy)."""
    h, w, c = shape
    return slots_dev[:, byte_offset:byte_offset + h * w * c].reshape(len(slots_dev), h, w, c)


class CudaModel:
    """A manifest model on one GPU with IO binding: device tensors in, outputs bound on the device.

    Verified at load against its recorded fp32 check (host run through the same session); fp16 is chosen
    by :func:`choose_dtype` against the check tolerance when ``fp16`` is ``"auto"`` (an fp16 copy of the
    graph made with ``onnxconverter_common``, kept beside the engine cache)."""

    def __init__(self, folder: Path, device_id: int = 0, *, fp16: str = "auto", cache_dir: Path | None = None,
                 prefer_tensorrt: bool = True, check: bool = True) -> None:
        import cupy
        import onnxruntime as ort

        from .session import open_session

        self.cupy = cupy
        self.folder = Path(folder)
        self.manifest: Manifest = load_manifest(self.folder)
        self.device_id = device_id
        self.cache_dir = Path(cache_dir or DEFAULT_ENGINE_CACHE)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = model_path(self.folder, self.manifest)
        avail = ort.get_available_providers()
        self.session = open_session(path, providers_for(avail, device_id, self.cache_dir, False, prefer_tensorrt))
        if check:
            verify(self.folder, self.manifest, self.session)
        self.dtype = "float32"
        if fp16 != "off" and self.manifest.check is not None:
            half = self._fp16_session(path, avail, prefer_tensorrt)
            if half is not None:
                self.dtype = self._compare(half) if fp16 == "auto" else "float16"
                if self.dtype == "float16":
                    self.session = half
        self.provider = self.session.get_providers()[0]
        self.input_name = self.manifest.input.name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def _fp16_session(self, path: Path, avail: list[str], prefer_tensorrt: bool) -> Any:
        from .session import open_session

        try:
            import onnx
            from onnxconverter_common import float16
        except ImportError:
            log.info("%s: onnxconverter-common missing, staying fp32", self.manifest.name)
            return None
        half_path = self.cache_dir / f"{self.manifest.name}-{self.manifest.sha256[:12] or 'x'}-fp16.onnx"
        if not half_path.is_file():
            model = float16.convert_float_to_float16(onnx.load(str(path)), keep_io_types=False)
            onnx.save(model, str(half_path))
        return open_session(half_path, providers_for(avail, self.device_id, self.cache_dir, True, prefer_tensorrt))

    def _compare(self, half: Any) -> str:
        from .manifest import check_size, fixed_image, to_tensor

        w, h = check_size(self.manifest.input)
        x = to_tensor(fixed_image(w, h)[None], self.manifest.input)
        names = [o.name for o in self.session.get_outputs()]
        ref = self.session.run(names, {self.manifest.input.name: x})
        got = half.run(names, {self.manifest.input.name: x.astype(np.float16)})
        assert self.manifest.check is not None
        return choose_dtype(ref, got, self.manifest.check.atol)

    def tensor(self, images_dev: Any) -> Any:
        """The model tensor on the device from ``[N,H,W,3]`` uint8 device images (resized if needed)."""
        i = self.manifest.input
        x = images_dev
        if (x.shape[1], x.shape[2]) != (i.height, i.width):
            x = resize_bilinear(self.cupy, x, i.height, i.width)
        return normalise(self.cupy, x, i, self.dtype)

    def run_device(self, x: Any, names: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run on a device tensor (already in the model's dtype/layout); outputs stay on the device until
        the single copy back of the outputs asked for."""
        io = self.session.io_binding()
        elem = np.float16 if x.dtype == self.cupy.float16 else (np.uint8 if x.dtype == self.cupy.uint8 else np.float32)
        io.bind_input(self.input_name, "cuda", self.device_id, elem, list(x.shape), x.data.ptr)
        wanted = list(names or self.output_names)
        for name in wanted:
            io.bind_output(name, "cuda", self.device_id)
        self.cupy.cuda.get_current_stream().synchronize()  # the input copy/kernels finished
        self.session.run_with_iobinding(io)
        return [np.asarray(o, dtype=np.float32) for o in io.copy_outputs_to_cpu()]

    def run_images(self, images_dev: Any) -> list[np.ndarray]:
        return self.run_device(self.tensor(images_dev))
