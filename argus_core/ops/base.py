"""The op interface: what an inference worker needs from an op, and the model wrapper ops share."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence


import numpy as np

from ..media.renditions import Frame, FrameSpec
from ..runtime.manifest import MODELS_DIR, ModelError, load_manifest
from ..runtime.precision import pick_folder
from ..runtime.session import Model
from ..request import OpParams
from .params import ParamSpec, check_other
from ..result import CutOutput

log = logging.getLogger("argus.ops")


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
    #: the ``params.other`` keys this op reads and their types/ranges, checked at submit (:meth:`check_params`)
    other_params: ClassVar[dict[str, ParamSpec]] = {}

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

    def check_params(self, params: OpParams) -> None:
        """Refuse a request whose ``params.other`` this op cannot use (400 ``invalid parameters`` + detail),
        before any of its frames share a batch with other jobs' frames (issue 10). The default checks the
        declared :attr:`other_params`; an op with further rules overrides it and calls ``super()``.
        Called once per request by :func:`argus_core.ops.check_request`."""
        check_other(self.name, params, self.other_params)

    #: ms either side of each mode-0 cut whose frames this op also reads (0: none; pulp: 500, ORIGINAL-BEHAVIOUR.md
    #: §2). A declared capability: the coordinator asks the decoder for those frames only for such an op.
    neighbours_ms: int = 0

    def neighbour_specs_for(self, params: OpParams) -> tuple[FrameSpec, ...]:
        """Renditions of the neighbour frames a job with these params reads (``()``: it reads none)."""
        return ()

    def specs_for(self, params: OpParams) -> tuple[FrameSpec, ...]:
        """Renditions a job with these params needs (a subset of ``specs()``; by default all of them).

        Lets an optional part of an op (a second-opinion model) cost decoder time only when asked for."""
        return self.specs()


    def load(self, providers: list[str] | None = None, threads: int = 1) -> None:
        for m in self.models:
            if m not in self.loaded:
                self.loaded[m] = load_model(self.models_dir, m, self.options, providers, threads)

    def infer(self, frames: Sequence[Frame], params: Sequence[OpParams]) -> list[CutOutput]:
        raise NotImplementedError

    def model(self, name: str | None = None) -> Model:
        return self.loaded[name or self.models[0]]


def load_model(models_dir: Path, name: str, options: dict[str, Any] | None, providers: list | None,
               threads: int, opener: Callable[[Path, list | None, int], Model] | None = None) -> Model:
    """The model ``name`` at the precision the operator asked for (option ``precision``, see
    :mod:`argus_core.runtime.precision`): its int8 file where measurement chose it, else the fp one.
    ``opener(folder, providers, threads)`` loads a folder (default: a new :class:`Model`)."""
    opener = opener or (lambda folder, p, t: Model(folder, providers=p, threads=t))
    folder, fallback = pick_folder(models_dir, name, options, providers)
    try:
        return opener(folder, providers, threads)
    except ModelError as exc:
        if fallback is None:
            raise
        log.warning("%s: int8 model unusable (%s); running the fp model", name, exc)
        return opener(fallback, providers, threads)


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
