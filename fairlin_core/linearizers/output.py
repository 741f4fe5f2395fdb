"""Write a linearization result as a checkpoint (safetensors + sidecar) and summarise it as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoints import Checkpoint, dataset_reference, save_checkpoint
from ..data import DatasetBundle
from ..runtime import json_ready
from .api import LinearizationResult

LINEARIZED_FILES = ("model.safetensors", "model.json")  # what save_linearized writes into its folder


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


def linearized_metadata(result: LinearizationResult, bundle: DatasetBundle, *, base_checkpoint: str | Path | None,
                        extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sidecar fields of a linearized model (strict JSON): method, requested budget, achieved count,
    configuration, per-group accuracy before (base) and after, the options, seed and per-epoch history."""
    return json_ready({
        "kind": "linearized", "method": result.method, "budget_requested": result.budget_requested,
        "budget": result.budget, "relu_count": result.relu_count, "base_relu_count": result.base_relu_count,
        "configuration": result.configuration,
        "base_checkpoint": str(base_checkpoint) if base_checkpoint is not None else None,
        "dataset": dataset_reference(bundle), "seed": result.seed, "options": result.options.to_dict(),
        "evaluation": result.evaluations["finetuned"]["test"], "evaluations": result.evaluations["finetuned"],
        "evaluations_base": result.evaluations["base"], "evaluations_linearized": result.evaluations["linearized"],
        "history": result.history.to_dict(orient="records"), **(extra or {}),
    })


def linearized_checkpoint(result: LinearizationResult, bundle: DatasetBundle, *,
                          base_checkpoint: str | Path | None = None,
                          extra: dict[str, Any] | None = None) -> Checkpoint:
    """The result as an in-memory :class:`Checkpoint` (``path`` None until :meth:`Checkpoint.save`)."""
    metadata = linearized_metadata(result, bundle, base_checkpoint=base_checkpoint, extra=extra)
    return Checkpoint(model=result.model.eval().cpu(), spec=result.spec, sidecar={"model": result.spec.to_dict(),
                                                                                   **metadata})


def save_linearized(result: LinearizationResult, out_dir: str | Path, bundle: DatasetBundle, *,
                    base_checkpoint: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` + ``model.json`` (atomically); returns the weights path."""
    metadata = linearized_metadata(result, bundle, base_checkpoint=base_checkpoint, extra=extra)
    return save_checkpoint(Path(out_dir) / "model.safetensors", result.model, result.spec, metadata)
