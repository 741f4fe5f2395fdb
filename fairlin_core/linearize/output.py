"""Write a linearization result as a checkpoint (safetensors + sidecar) and summarise it as JSON."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from ..checkpoints import save_checkpoint
from ..data import DatasetBundle
from ..checkpoints import dataset_reference
from .api import LinearizationResult


def _clean(value: Any) -> Any:
    """NaN -> None, recursively, so the sidecar is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def result_summary(result: LinearizationResult, split: str = "test") -> dict[str, Any]:
    """The CLI's JSON: method, budget_requested, relu_count, base_relu_count, overall_accuracy and groups
    (group, n, accuracy, base_accuracy, linearized_accuracy) on ``split``, plus the configuration used."""
    table = result.group_table(split)
    return {"method": result.method, "budget_requested": result.budget_requested, "budget": result.budget,
            "relu_count": result.relu_count, "base_relu_count": result.base_relu_count, "split": split,
            "overall_accuracy": result.evaluations["finetuned"][split]["overall_accuracy"],
            "base_overall_accuracy": result.evaluations["base"][split]["overall_accuracy"],
            "groups": [{"group": r.group, "n": int(r.n), "accuracy": float(r.accuracy),
                        "base_accuracy": float(r.base_accuracy), "linearized_accuracy": float(r.linearized_accuracy)}
                       for r in table.itertuples()],
            "configuration": result.configuration}


def save_linearized(result: LinearizationResult, out_dir: str | Path, bundle: DatasetBundle, *,
                    base_checkpoint: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` + ``model.json`` (atomically); returns the weights path.

    The sidecar records the method, requested budget, achieved count, configuration, per-group accuracy
    before (base) and after, the options, seed and per-epoch history.
    """
    metadata = {
        "kind": "linearized", "method": result.method, "budget_requested": result.budget_requested,
        "budget": result.budget, "relu_count": result.relu_count, "base_relu_count": result.base_relu_count,
        "configuration": result.configuration, "base_checkpoint": str(base_checkpoint),
        "dataset": dataset_reference(bundle), "seed": result.seed, "options": result.options.to_dict(),
        "evaluation": result.evaluations["finetuned"]["test"], "evaluations": result.evaluations["finetuned"],
        "evaluations_base": result.evaluations["base"], "evaluations_linearized": result.evaluations["linearized"],
        "history": result.history.to_dict(orient="records"), **(extra or {}),
    }
    return save_checkpoint(Path(out_dir) / "model.safetensors", result.model, result.spec, _clean(metadata))
