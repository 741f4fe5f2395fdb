"""The dataset a checkpoint belongs to: what its sidecar records, and reloading exactly those splits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import DatasetBundle, load_dataset
from ..errors import CheckpointError


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
