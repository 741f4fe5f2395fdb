"""Containers for a loaded dataset: seeded splits of ``(x, y, group)`` plus names and options."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from fairlin_core.errors import DatasetError

SPLIT_NAMES = ("train", "val", "test", "balanced")


@dataclass
class Split:
    """One split of a dataset, held in memory.

    x: float32 tensor, (N, C, H, W) for images (normalised) or (N, D) for vectors.
    y: int64 tensor (N,), target class index in ``[0, num_classes)``.
    group: int64 tensor (N,), protected-group index in ``[0, len(group_names))``.
    """

    x: torch.Tensor
    y: torch.Tensor
    group: torch.Tensor

    def __post_init__(self) -> None:
        n = self.x.shape[0]
        if self.y.shape != (n,) or self.group.shape != (n,):
            raise ValueError(f"split sizes disagree: x {tuple(self.x.shape)}, y {tuple(self.y.shape)}, "
                             f"group {tuple(self.group.shape)}")

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def subset(self, index: torch.Tensor) -> "Split":
        """The rows at ``index`` (int64 indices or a bool mask)."""
        return Split(self.x[index], self.y[index], self.group[index])


@dataclass(frozen=True)
class DatasetOutline:
    """What a dataset is without its files: enough to build a model for it and to reload it once they are there.

    input_shape: one example's shape, e.g. (3, 32, 32). options: as :attr:`DatasetBundle.options`.
    missing: what is missing on disk (e.g. "missing data/cifar-10-batches-py/data_batch_1").
    """

    name: str
    input_shape: tuple[int, ...]
    class_names: list[str]
    group_names: list[str]
    target_attribute: str
    group_attribute: str
    options: dict[str, Any] = field(default_factory=dict)
    missing: str = ""

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


@dataclass
class DatasetBundle:
    """A dataset loaded with its protocol applied.

    splits: ``train``, ``val`` (carved from train), ``test`` (imbalanced like train where the
    protocol subsamples) and, where the protocol subsamples, ``balanced`` (every held-out example).
    options: the resolved loading options (seed, fractions, ...), enough to reload the same splits.
    """

    name: str
    splits: dict[str, Split]
    class_names: list[str]
    group_names: list[str]
    target_attribute: str
    group_attribute: str
    options: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0

    def require(self, *splits: str, purpose: str) -> None:
        """Refuse (DatasetError) when one of ``splits`` is absent or empty, naming ``purpose`` (e.g. "training")."""
        for name in splits:
            if name not in self.splits or len(self.splits[name]) == 0:
                sizes = ", ".join(f"{s} {len(split)}" for s, split in self.splits.items())
                raise DatasetError(f"dataset {self.name} has an empty {name} split ({sizes} examples); {purpose} "
                                   f"needs examples in {', '.join(splits)}: expected more data or a larger "
                                   f"{name}_fraction")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1, 8, 8) or (2,)."""
        return tuple(self.splits["train"].x.shape[1:])

    def group_sizes(self) -> pd.DataFrame:
        """Tidy table with columns split, group, group_index, n (every group in every split)."""
        rows = []
        for split_name, split in self.splits.items():
            counts = torch.bincount(split.group, minlength=len(self.group_names)).tolist()
            for index, name in enumerate(self.group_names):
                rows.append({"split": split_name, "group": name, "group_index": index, "n": counts[index]})
        return pd.DataFrame(rows, columns=["split", "group", "group_index", "n"])

    def group_mean_inputs(self, split: str = "test") -> pd.DataFrame:
        """The mean (normalised) input of each group's examples of ``split``: one row per group and flat input
        element (group, element, value); a group without examples has no rows."""
        data = self.splits[split]
        rows = []
        for index, name in enumerate(self.group_names):
            chosen = data.x[data.group == index]
            if len(chosen):
                mean = chosen.float().mean(dim=0).flatten().numpy()
                rows.append(pd.DataFrame({"group": name, "element": range(mean.size), "value": mean}))
        return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["group", "element", "value"])

    def describe(self) -> dict[str, Any]:
        """JSON-ready summary: name, group_names, splits -> {group: count}, skipped."""
        sizes = self.group_sizes()
        splits = {s: dict(zip(g["group"], (int(n) for n in g["n"]))) for s, g in sizes.groupby("split", sort=False)}
        return {"name": self.name, "group_names": list(self.group_names), "splits": splits,
                "skipped": int(self.skipped), "target": self.target_attribute, "group": self.group_attribute,
                "class_names": list(self.class_names), "input_shape": list(self.input_shape)}
