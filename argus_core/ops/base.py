"""The op interface: what an inference worker needs from an op, and the model wrapper ops share."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, ClassVar, Sequence

import msgspec
import numpy as np

from ..frames import Frame, FrameSpec
from ..models import (MODELS_DIR, PACKAGE_PREFIX, Manifest, ModelError, check_file_hash, load_manifest, model_path,
                      open_session, to_tensor, verify)
from ..request import OpParams
from ..result import Label

log = logging.getLogger("argus.ops")


class CutOutput(msgspec.Struct):
    """One op's verdict on one frame: labels (before the §4 filter) and the per-cut ``result`` (§3)."""

    labels: list[Label]
    result: Any


class Model:
    """An ONNX model described by a manifest; verified against its recorded outputs when loaded."""

    def __init__(self, folder: Path, *, providers: list[str] | None = None, threads: int = 1) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = load_manifest(self.folder)
        path = model_path(self.folder, self.manifest)
        if self.manifest.file.startswith(PACKAGE_PREFIX):
            check_file_hash(path, self.manifest.sha256, self.manifest.name)
        self.session = open_session(path, providers, threads)
        verify(self.folder, self.manifest, self.session)
        self.input_name = self.manifest.input.name
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.session.run(self.output_names, {self.input_name: tensor})

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


class Op:
    """Base of every op. Subclasses set ``name``/``models`` and implement ``specs`` and ``infer``.

    Instances are created in the parent (cheap: manifests only) to answer ``specs`` and readiness, and
    ``load``-ed in inference workers, where ``infer`` runs on batches of frames that may come from several
    jobs (hence one ``OpParams`` per frame).
    """

    name: ClassVar[str]
    #: model folder names under the models directory this op needs
    models: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""

    def __init__(self, models_dir: Path | None = None, options: dict[str, Any] | None = None) -> None:
        self.models_dir = Path(models_dir or os.environ.get("ARGUS_MODELS_DIR") or MODELS_DIR)
        #: operator settings shared by all ops (``Engine(options=...)``), e.g. ``galleries_dir``;
        #: each op documents the keys it reads.
        self.options: dict[str, Any] = dict(options or {})
        self.manifests = {m: load_manifest(self.models_dir / m) for m in self.models}
        self.loaded: dict[str, Model] = {}

    def specs(self) -> tuple[FrameSpec, ...]:
        """Renditions this op reads (by default, each model's input size)."""
        out = []
        for m in self.manifests.values():
            i = m.input
            out.append(FrameSpec(i.width, i.height, i.resize, i.max_side))
        return tuple(out)

    def specs_for(self, params: OpParams) -> tuple[FrameSpec, ...]:
        """Renditions a job with these params needs (a subset of ``specs()``; by default all of them).

        Lets an optional part of an op (a second-opinion model) cost decoder time only when asked for."""
        return self.specs()

    def check_params(self, params: OpParams) -> None:
        """Raise a 400 :class:`~argus_core.errors.InvalidRequest` (with a message that says what is wrong)
        when a request's params for this op cannot work; called once per request before it is queued
        (:func:`argus_core.ops.check_request`). By default every params object is accepted."""

    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        for m in self.models:
            if m not in self.loaded:
                self.loaded[m] = Model(self.models_dir / m, providers=providers, threads=threads)

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        raise NotImplementedError

    def model(self, name: str | None = None) -> Model:
        return self.loaded[name or self.models[0]]


def check_ready(op: Op) -> str:
    """'' when the op's models load and pass their output checks, else the reason (for logs)."""
    try:
        op.load()
    except (ModelError, OSError) as exc:
        return str(exc)
    except Exception as exc:  # onnxruntime raises its own types for corrupt files
        return f"{type(exc).__name__}: {exc}"
    finally:
        op.loaded.clear()
    return ""


def stack_views(frames: Sequence[Frame], spec: FrameSpec) -> np.ndarray:
    """One batch array from the frames' views of ``spec`` (the one copy a batch needs)."""
    return np.stack([f.views[spec] for f in frames])
