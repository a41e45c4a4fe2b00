"""The model runner: one onnxruntime session per model file, verified at load, with Argus' defaults.

One class per execution style: :class:`Model` runs host (numpy) tensors — on the CPU provider, or on the
CUDA provider with host↔device copies done by onnxruntime. The GPU runner with IO binding (device buffers
from CuPy, outputs kept on the device) is the next style; ops never build sessions themselves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .manifest import PACKAGE_PREFIX, Manifest, ModelError, check_file_hash, load_manifest, model_path, to_tensor, verify


def open_session(path: Path, providers: list[str] | None = None, threads: int = 1) -> Any:
    """An onnxruntime session with Argus' defaults: ``threads`` intra-op threads (the per-machine rule,
    :func:`argus_core.runtime.tuning.plan`), without spinning when more than one (a shared machine)."""
    import onnxruntime as ort

    if not Path(path).is_file():
        raise ModelError(f"model file missing: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, threads)
    opts.inter_op_num_threads = 1
    if threads > 1:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=opts, providers=providers or ["CPUExecutionProvider"])


class Model:
    """An ONNX model described by a manifest, run on the CPU (or through onnxruntime's CUDA provider): the
    one runner every op, the face pipeline and the OCR detector use. Verified against its recorded outputs
    when loaded (``check=False`` only where a caller verifies another way)."""

    def __init__(self, folder: Path, *, providers: list | None = None, threads: int = 1,
                 check: bool = True) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = load_manifest(self.folder)
        path = model_path(self.folder, self.manifest)
        if self.manifest.file.startswith(PACKAGE_PREFIX):
            check_file_hash(path, self.manifest.sha256, self.manifest.name)
        self.session = open_session(path, providers, threads)
        if check:
            verify(self.folder, self.manifest, self.session)
        self.input_name = self.manifest.input.name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, tensor: np.ndarray, names: Sequence[str] | None = None) -> list[np.ndarray]:
        """Run on a ready tensor; ``names``: the outputs wanted (default all)."""
        return self.session.run(list(names or self.output_names), {self.input_name: tensor})

    def warmup(self, batch: int) -> None:
        """Run once on a full batch of blank frames, so the runtime's memory arena reaches its steady
        size at start-up: memory then stays flat whatever the video length (and the first real batch
        is not slow). Dynamic-size inputs are left alone."""
        i = self.manifest.input
        if not (i.width and i.height) or batch < 1:
            return
        images = np.zeros((batch, i.height, i.width, 3), dtype=np.uint8)
        # Twice: onnxruntime's arena keeps growing on the second run at a new batch size (+15 MB for
        # pulp, then flat), and memory must not depend on whether a job ever fills a batch.
        for _ in range(2):
            self.run_images(images)

    def run_images(self, images: np.ndarray) -> list[np.ndarray]:
        """Run on RGB uint8 images ``[N,H,W,3]`` at the input size, with the manifest's normalisation."""
        return self.run(to_tensor(images, self.manifest.input))
