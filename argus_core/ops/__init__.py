"""Op registry: op name → class, discovered from the modules of this package.

Every op is backed by a real model (CONTRACT §3). An op is a subclass of :class:`Op` with a ``name``; a new
module in this package is picked up without further registration. Models a user brings are described by
a manifest alone (see :mod:`argus_core.ops.generic`).
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from pathlib import Path
from typing import Any, Mapping

from .base import CutOutput, Model, Op, check_ready

log = logging.getLogger("argus.ops")

__all__ = ["OP_CLASSES", "CutOutput", "Model", "Op", "check_ready", "check_request", "create_op", "op_classes"]


def _discover() -> dict[str, type[Op]]:
    found: dict[str, type[Op]] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("_") or info.name == "base":
            continue
        try:
            module = importlib.import_module(f"{__name__}.{info.name}")
        except Exception as exc:  # a broken op module must not take the others down
            log.error("cannot import op module %s: %s", info.name, exc)
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Op) and obj.__module__ == module.__name__ \
                    and getattr(obj, "name", None):
                found[obj.name] = obj
    return found


OP_CLASSES: dict[str, type[Op]] = _discover()


def op_classes(models_dir: Path | None = None) -> dict[str, Any]:
    """Built-in ops plus ops declared by manifests in the models folder (bring-your-own models)."""
    out: dict[str, Any] = dict(OP_CLASSES)
    try:
        from .generic import manifest_ops
    except ImportError:
        return out
    for name, factory in manifest_ops(models_dir).items():
        if name in out:
            # A user's own model for a built-in op (e.g. a real terror classifier) replaces ours.
            log.info("op %s: the model manifest in the models folder replaces the built-in op", name)
        out[name] = factory
    return out


def create_op(name: str, models_dir: Path | None = None, options: dict[str, Any] | None = None) -> Op:
    """An op instance (manifests read; models are loaded later with ``op.load()``)."""
    classes = op_classes(models_dir)
    if name not in classes:
        raise KeyError(name)
    return classes[name](models_dir, options or {})


def check_request(req: Any, ops: Mapping[str, Op]) -> None:
    """Let each op of a parsed request refuse params it cannot work with (:meth:`Op.check_params`), so a bad
    request is a 400 at submit time rather than a job whose cuts carry no result.

    ``req`` is a :class:`~argus_core.request.VideoRequest`; ``ops`` the engine's op instances by name (ops
    not in it were already refused by ``parse_request``). The engine calls this right after parsing."""
    from ..request import OpParams

    for item in req.ops:
        op = ops.get(item.op)
        if op is not None:
            op.check_params(item.params if item.params is not None else OpParams())
