"""What ops exist, which models back them, and whether each is ready (for ``argus models`` and /healthz)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .runtime.manifest import ModelError
from .ops import check_ready, create_op, op_classes


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
                                  "licence": man.licence})
        row["reason"] = check_ready(op) if verify else ""
        row["ready"] = not row["reason"]
        rows.append(row)
    return rows
