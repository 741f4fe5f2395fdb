"""View models of the Models & data page and the sidebar: checkpoint overviews and choices (shipped + user),
and base-model training as a job of the shared JobManager. No streamlit here."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fairlin_core.audits import classify_groups, default_split
from fairlin_core.checkpoints import (FORMATS, IMPORT_SUFFIXES, SHIPPED_CHECKPOINTS, accept_import,
                                      checkpoint_group_table, checkpoint_table)
from fairlin_core.jobs import JobManager, TrainBaseConfig, user_checkpoint_dir
from fairlin_core.viz import GroupStyle

__all__ = ["user_checkpoint_dir", "checkpoints_overview", "checkpoint_groups_overview", "dataset_group_style",
           "accuracy_on_default_split", "checkpoint_choices",
           "submit_base_training", "IMPORT_TYPES", "NOT_SUPPORTED", "import_formats_overview", "import_architectures",
           "import_upload"]

IMPORT_TYPES = sorted({suffix.rsplit(".", 1)[-1] for suffix in IMPORT_SUFFIXES})  # file_uploader's type filter
NOT_SUPPORTED = ("Not supported here: pickled nn.Module objects or any file needing code to unpickle (refused with "
                 "the offending global's name); your own nn.Module classes (`--model-code`, CLI and notebook only: "
                 "the dashboard never runs code from an upload); torchvision models other than ResNet18/34; "
                 "ReLU6/GELU/SiLU activations (reported, never linearized).")


def checkpoints_overview(user_dir: str | Path | None = None) -> pd.DataFrame:
    """Shipped and user checkpoints, one row each, with a ``source`` column (shipped / user)."""
    tables = [checkpoint_table(SHIPPED_CHECKPOINTS).assign(source="shipped")]
    if user_dir is not None and Path(user_dir).is_dir():
        tables.append(checkpoint_table(user_dir).assign(source="user"))
    table = pd.concat(tables, ignore_index=True)
    return table[["source"] + [c for c in table.columns if c != "source"]]


def checkpoint_groups_overview(user_dir: str | Path | None = None) -> pd.DataFrame:
    """Per-group accuracy recorded in the sidecars of shipped and user checkpoints."""
    tables = [checkpoint_group_table(SHIPPED_CHECKPOINTS)]
    if user_dir is not None and Path(user_dir).is_dir():
        tables.append(checkpoint_group_table(user_dir))
    return pd.concat(tables, ignore_index=True)


def dataset_group_style(sizes: pd.DataFrame | None, names: list[str] | tuple[str, ...] = ()) -> GroupStyle:
    """The groups' colours on the checkpoint and dataset charts, as on the audit pages: the groups of a dataset's
    group-sizes table (split, group, n) in its order, then any of ``names`` it lacks; minority groups by their
    training share (:func:`classify_groups`); no minority without ``sizes``."""
    if sizes is None or sizes.empty:
        return GroupStyle.of(list(dict.fromkeys(str(n) for n in names)))
    classes = classify_groups(sizes)
    ordered = list(dict.fromkeys([*classes["group"], *(str(n) for n in names)]))
    return GroupStyle.of(ordered, classes[classes["group_class"] == "minority"]["group"].tolist())


def accuracy_on_default_split(groups: pd.DataFrame, sizes: pd.DataFrame | None) -> tuple[str, pd.DataFrame]:
    """Of :func:`checkpoint_groups_overview` rows: the split the charts open on (balanced where recorded, else
    test) and its rows, with each group's training-set size (train_n, from ``sizes``) for the legend."""
    split = default_split(list(dict.fromkeys(groups["split"])))
    rows = groups[groups["split"] == split].astype({"group": str})
    if sizes is not None and not sizes.empty:
        rows = rows.merge(classify_groups(sizes)[["group", "train_n"]], on="group", how="left")
    return split, rows


def checkpoint_choices(user_dir: str | Path | None = None, dataset: str | None = None) -> dict[str, str]:
    """{label: weights path} of base checkpoints, optionally only those trained on ``dataset``."""
    table = checkpoints_overview(user_dir)
    if dataset:
        table = table[table["dataset"] == dataset]
    return {(row.checkpoint if row.source == "shipped" else f"{row.checkpoint} (user)"): row.path
            for row in table.itertuples()}


def submit_base_training(manager: JobManager, dataset: str, model: str = "resnet18", *, width: int = 16,
                         epochs: int = 5, seed: int = 0, name: str | None = None,
                         data_root: str | None = None) -> str:
    """Queue a train-base job on ``manager`` (the shared queue, progress and cancel of the jobs panel); the
    checkpoint lands in the manager's ``<store>/user_checkpoints``. Returns the run id; FairLinError when the
    choices are invalid (unknown dataset, model not fitting it, bad epochs or name, existing checkpoint).

    width: stage-1 channels of image models (the MLP keeps its own default width). name: None =
    ``<dataset>_<model>_w<width>_s<seed>``.
    """
    options = {"width": width} if model != "mlp" else {}
    name = name or f"{dataset}_{model}_w{width}_s{seed}"
    return manager.submit(TrainBaseConfig(dataset, model, name=name, epochs=epochs, seed=seed,
                                          model_options=options, data_root=data_root))


def import_formats_overview() -> pd.DataFrame:
    """The importable layouts: one row per format with the architectures it maps onto and what it reads."""
    return pd.DataFrame([{"format": f.name, "architectures": ", ".join(a for a in f.architectures if a != "code"),
                          "reads": f.description} for f in FORMATS.values()])


def import_architectures(fmt: str) -> list[str]:
    """The zoo architectures ``fmt`` imports (never model code)."""
    return [a for a in FORMATS[fmt].architectures if a != "code"]


def import_upload(file_name: str, data: bytes, fmt: str, arch: str, dataset: str, user_dir: str | Path, *,
                  width: int | None = None, data_root: str | None = None) -> Path:
    """Validate and import an uploaded file into ``user_dir`` (see ``accept_import``); FairLinError says why not."""
    return accept_import(file_name, data, fmt, arch, dataset, user_dir, width=width or None, data_root=data_root)
