"""Evaluate checkpoints per group and build the evaluation part of a checkpoint sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from .base_training import TrainConfig, train_config_dict
from .checkpoints import load_checkpoint
from .data import DatasetBundle, load_dataset
from .errors import CheckpointError, DatasetError
from .metrics import evaluate_split
from .models import relu_count


def dataset_reference(bundle: DatasetBundle) -> dict[str, Any]:
    """What a sidecar stores to reload exactly the same splits (data root excluded)."""
    return {"name": bundle.name, "target": bundle.target_attribute, "group": bundle.group_attribute,
            "options": dict(bundle.options), "group_names": list(bundle.group_names),
            "class_names": list(bundle.class_names)}


def load_dataset_for(sidecar: dict[str, Any], data_root: str | Path | None = None,
                     group: str | None = None) -> DatasetBundle:
    """Reload the dataset a checkpoint was trained on, with the same options and seed.

    group: protect another group attribute of the same data (the target and splits stay the same).
    """
    reference = sidecar.get("dataset")
    if not isinstance(reference, dict) or "name" not in reference:
        raise CheckpointError("checkpoint sidecar names no dataset; expected a \"dataset\" entry with a name")
    options = dict(reference.get("options", {}))
    target = options.pop("target", reference.get("target"))
    group = group or options.pop("group", reference.get("group"))
    options.pop("group", None)
    seed = options.pop("seed", 0)
    bundle = load_dataset(reference["name"], data_root=data_root, seed=seed, target=target, group=group, **options)
    if "class_names" in reference and list(bundle.class_names) != list(reference["class_names"]):
        raise CheckpointError(f"dataset {bundle.name} now has classes {bundle.class_names} but the checkpoint was "
                              f"trained on {reference['class_names']}; expected the same data")
    return bundle


def evaluate_model(model: nn.Module, bundle: DatasetBundle, split: str = "test") -> dict[str, Any]:
    """{"split", "overall_accuracy", "worst_group_accuracy", "groups": [{"group", "n", "accuracy"}]}."""
    if split not in bundle.splits:
        raise DatasetError(f"dataset {bundle.name} has no split {split!r}; expected one of "
                           f"{', '.join(bundle.splits)}")
    overall, table = evaluate_split(model, bundle.splits[split], bundle.group_names)
    groups = [{"group": r.group, "n": int(r.n), "accuracy": float(r.accuracy)} for r in table.itertuples()]
    present = table.loc[table["n"] > 0, "accuracy"]
    return {"split": split, "overall_accuracy": overall,
            "worst_group_accuracy": float(present.min()) if len(present) else float("nan"), "groups": groups}


def base_sidecar_metadata(model: nn.Module, bundle: DatasetBundle, *, seed: int, config: TrainConfig,
                          history: pd.DataFrame, train_seconds: float) -> dict[str, Any]:
    """Sidecar fields of a freshly trained base model: dataset, seed, recipe, ReLU count, per-group accuracy
    on test (and on the balanced split where the dataset has one)."""
    evaluations = {name: evaluate_model(model, bundle, name) for name in ("test", "balanced") if name in bundle.splits}
    return {"kind": "base", "dataset": dataset_reference(bundle), "seed": seed, "relu_count": relu_count(model),
            "training": {**train_config_dict(config), "seconds": round(train_seconds, 2),
                         "history": history.to_dict(orient="records")},
            "evaluation": evaluations["test"], "evaluations": evaluations}


def evaluate_checkpoint(path: str | Path, *, data_root: str | Path | None = None,
                        split: str = "test") -> dict[str, Any]:
    """Per-group accuracy of any FairLin checkpoint on a split of the data it was trained on."""
    checkpoint = load_checkpoint(path)
    bundle = load_dataset_for(checkpoint.sidecar, data_root)
    result = evaluate_model(checkpoint.model, bundle, split)
    return {"checkpoint": str(checkpoint.path), "dataset": bundle.name, "relu_count": relu_count(checkpoint.model),
            **result}
