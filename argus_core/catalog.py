"""What ops exist, which models back them, and whether each is ready (for ``argus models`` and /healthz)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .runtime.manifest import ModelError
from .ops import check_ready, create_op, op_classes


def _runs_as(models_dir: Path, name: str, options: dict[str, Any] | None) -> dict[str, str]:
    """Which file of the model runs (``precision``: int8 where measurement chose it) and on what."""
    from .runtime.device import select_device
    from .runtime.precision import int8_status, pick_folder

    device = select_device()
    provider = device.providers[0]
    provider = provider[0] if isinstance(provider, tuple) else provider
    try:
        folder, _ = pick_folder(models_dir, name, options, device.providers)
    except (ModelError, ValueError) as exc:
        return {"precision": f"error: {exc}", "device": device.name, "provider": provider}
    int8 = folder.name != name
    why = "" if int8 else int8_status(models_dir, name)
    return {"precision": "int8" if int8 else "fp32", "device": device.name, "provider": provider,
            **({"int8": why} if why and why != "no int8 model (models/quantize.py)" else {})}


def runtime_plan(workers: int = 1, decoders: int | None = None) -> dict[str, Any]:
    """The per-machine thread/batch choice (:func:`argus_core.runtime.tuning.plan`) for these settings."""
    import msgspec

    from .runtime.device import device_name
    from .runtime.tuning import machine_cores, plan

    cores = machine_cores()
    t = plan(cores, workers, decoders if decoders is not None else max(1, cores - 1), device_name())
    return {**msgspec.to_builtins(t), "summary": t.describe()}


def catalog(models_dir: Path | None = None, verify: bool = True,
            options: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """One row per op: ``{op, description, ready, reason, models: [{name, source, licence}]}``.

    With ``verify`` each model is loaded and checked against its recorded outputs (a few hundred ms each).
    """
    rows = []
    for name, cls in op_classes(models_dir).items():
        row: dict[str, Any] = {"op": name, "description": cls.description, "models": [], "ready": False,
                               "reason": ""}
        try:
            op = create_op(name, models_dir, options)
        except ModelError as exc:
            row["reason"] = str(exc)
            rows.append(row)
            continue
        for mname, man in op.manifests.items():
            src = man.source
            row["models"].append({"name": mname, "source": f"{src.registry}:{src.package}@{src.version}",
                                  "licence": man.licence, **_runs_as(op.models_dir, mname, options)})
        row["reason"] = check_ready(op) if verify else ""
        row["ready"] = not row["reason"]
        rows.append(row)
    return rows
