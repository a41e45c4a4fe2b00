"""Op registry: op name → class. Every op is backed by a real model (CONTRACT §3)."""

from __future__ import annotations

from pathlib import Path

from .base import CutOutput, Model, Op, check_ready
from .pulp import PulpOp

OP_CLASSES: dict[str, type[Op]] = {
    PulpOp.name: PulpOp,
}

__all__ = ["OP_CLASSES", "CutOutput", "Model", "Op", "check_ready", "create_op"]


def create_op(name: str, models_dir: Path | None = None) -> Op:
    return OP_CLASSES[name](models_dir)
