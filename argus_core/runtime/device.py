"""The device seam: where preprocessing and inference run.

``CpuDevice`` uses numpy and onnxruntime's CPU provider and never imports CuPy. ``CudaDevice`` (one per GPU,
chosen when the ``gpu`` extra is installed and a GPU is present) will copy ring slots to the GPU with CuPy,
preprocess there and hand device buffers to onnxruntime through IO binding; today it runs the models
with the CUDA execution provider and numpy preprocessing, and the CuPy path is the next step (see the
GPU issue). Nothing outside this module asks which device it is on.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Any

import numpy as np

log = logging.getLogger("argus.device")


class CpuDevice:
    name = "cpu"
    providers = ["CPUExecutionProvider"]

    def asarray(self, array: np.ndarray) -> np.ndarray:
        return array

    def to_host(self, array: Any) -> np.ndarray:
        return np.asarray(array)


class CudaDevice:
    name = "cuda"

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]

    def asarray(self, array: np.ndarray) -> Any:
        import cupy  # only on the GPU path

        with cupy.cuda.Device(self.index):
            return cupy.asarray(array)

    def to_host(self, array: Any) -> np.ndarray:
        return array.get() if hasattr(array, "get") else np.asarray(array)


def cuda_available() -> bool:
    """True when onnxruntime has the CUDA provider and a GPU is visible (checked without importing CuPy)."""
    if os.environ.get("ARGUS_DEVICE", "auto") == "cpu":
        return False
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        return False
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    return importlib.util.find_spec("cupy") is not None and os.path.exists("/dev/nvidia0")


def device_name(prefer: str | None = None) -> str:
    """"cuda" or "cpu": what :func:`select_device` would pick, without making a device."""
    prefer = prefer or os.environ.get("ARGUS_DEVICE", "auto")
    return "cuda" if prefer != "cpu" and cuda_available() else "cpu"


def select_device(prefer: str | None = None, index: int = 0) -> CpuDevice | CudaDevice:
    """``prefer``: "cpu", "cuda" or "auto" (default; also ``ARGUS_DEVICE``)."""
    prefer = prefer or os.environ.get("ARGUS_DEVICE", "auto")
    if prefer == "cpu":
        return CpuDevice()
    if cuda_available():
        return CudaDevice(index)
    if prefer == "cuda":
        log.warning("CUDA requested but not available; using the CPU")
    return CpuDevice()
