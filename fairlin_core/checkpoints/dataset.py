"""The dataset a checkpoint belongs to: what its sidecar records, reloading exactly those splits, and the check
that a dataset fits a checkpoint's model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import DatasetBundle, DatasetOutline, load_dataset
from ..errors import CheckpointError, FairLinError, brief
from ..models import ModelSpec


def dataset_reference(bundle: DatasetBundle | DatasetOutline) -> dict[str, Any]:
    """What a sidecar stores to reload exactly the same splits (data root excluded); an outline (the dataset
    without its files) gives the entries its loader would, with the loader's standard class names."""
    return {"name": bundle.name, "target": bundle.target_attribute, "group": bundle.group_attribute,
            "options": dict(bundle.options), "group_names": list(bundle.group_names),
            "class_names": list(bundle.class_names)}


def check_fits(spec: ModelSpec, bundle: DatasetBundle, label: str = "the checkpoint") -> DatasetBundle:
    """``bundle`` when its samples have ``spec``'s input shape ((C, H, W) or (features,)) and it has ``spec``'s number
    of classes, so the model built from ``spec`` takes it; else FairLinError (one line naming both shapes,
    ``label`` the checkpoint), raised before any work on the data starts."""
    if tuple(bundle.input_shape) != tuple(spec.input_shape) or bundle.num_classes != spec.num_classes:
        raise FairLinError(f"{label} expects input {tuple(spec.input_shape)} with {spec.num_classes} classes, but "
                           f"dataset {bundle.name} has input {tuple(bundle.input_shape)} with {bundle.num_classes} "
                           f"classes; expected the dataset the checkpoint was trained on")
    return bundle


def load_dataset_for(sidecar: dict[str, Any], data_root: str | Path | None = None,
                     group: str | None = None, label: str = "the checkpoint") -> DatasetBundle:
    """Reload the dataset a checkpoint was trained on, with the same options and seed, checked to fit the
    sidecar's model where it has one (every checkpoint's sidecar has; :func:`check_fits`, ``label`` names the
    checkpoint in its error).

    The sidecar is untrusted: its entries are type-checked, its sizes bounded and its paths confined to the
    data root (``load_dataset(..., confine_paths=True)``). group: protect another group attribute of the
    same data (the target and splits stay the same).
    """
    reference = sidecar.get("dataset")
    if not isinstance(reference, dict) or not isinstance(reference.get("name"), str):
        raise CheckpointError("checkpoint sidecar names no dataset; expected a \"dataset\" entry with a name")
    options = reference.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise CheckpointError(f"the sidecar's dataset options are {brief(options)}; expected a JSON object of "
                              f"option names and values")
    options = dict(options)
    for key in ("target", "group"):
        value = reference.get(key)
        if value is not None and not isinstance(value, str):
            raise CheckpointError(f"the sidecar's dataset {key} is {brief(value)}; expected an attribute name")
    names = reference.get("class_names")
    if names is not None and not isinstance(names, list):
        raise CheckpointError(f"the sidecar's dataset class_names are {brief(names)}; expected a list of names")
    target = options.pop("target", reference.get("target"))
    group = group or options.pop("group", reference.get("group"))
    options.pop("group", None)
    seed = options.pop("seed", 0)
    spec = _sidecar_spec(sidecar, label)
    bundle = load_dataset(reference["name"], data_root=data_root, seed=seed, target=target, group=group,
                          confine_paths=True, **options)
    if names is not None and list(bundle.class_names) != names:
        raise CheckpointError(f"dataset {bundle.name} now has classes {brief(bundle.class_names)} but the checkpoint "
                              f"was trained on {brief(names)}; expected the same data")
    return check_fits(spec, bundle, label) if spec is not None else bundle


def _sidecar_spec(sidecar: dict[str, Any], label: str) -> ModelSpec | None:
    """The model spec of a sidecar (None when it has no ``model`` entry); CheckpointError when it is malformed."""
    if "model" not in sidecar:
        return None
    try:
        return ModelSpec.from_dict(sidecar["model"])
    except FairLinError as error:
        raise CheckpointError(f"sidecar of {label} describes no model: {error}") from None
