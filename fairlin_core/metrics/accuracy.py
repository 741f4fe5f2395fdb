"""Per-group accuracy of a model on a split, disaggregated with fairlearn's MetricFrame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
from fairlearn.metrics import MetricFrame
from sklearn.metrics import accuracy_score
from torch import nn

from ..data import DatasetBundle, Split
from ..errors import DatasetError, brief
from ..runtime import batch_indices, default_device, eval_batch_size


@torch.no_grad()
def predict_logits(model: nn.Module, x: torch.Tensor, batch_size: int | None = None,
                   device: torch.device | None = None) -> torch.Tensor:
    """Logits (N, num_classes) on CPU, computed in eval mode in batches on ``device`` (batch_size None =
    :func:`~fairlin_core.runtime.eval_batch_size`); the batches stay on the device and come back in one copy."""
    device = device or default_device()
    batch_size = batch_size or eval_batch_size(device)
    was_training = model.training
    model.eval().to(device)
    outputs = [model(x[index].to(device, non_blocking=True)).float() for index in batch_indices(len(x), batch_size)]
    model.train(was_training)
    return torch.cat(outputs).cpu() if outputs else torch.empty(0)


def group_accuracy(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray,
                   group_names: list[str]) -> pd.DataFrame:
    """Tidy table with columns group, group_index, n, accuracy (fraction); one row per group name.

    Groups absent from ``groups`` get n = 0 and accuracy NaN.
    """
    frame = MetricFrame(metrics={"accuracy": accuracy_score, "n": lambda t, p: len(t)},
                        y_true=y_true, y_pred=y_pred, sensitive_features=pd.Series(groups, name="group_index"))
    by_group = frame.by_group
    rows = []
    for index, name in enumerate(group_names):
        present = index in by_group.index
        rows.append({"group": name, "group_index": index,
                     "n": int(by_group.loc[index, "n"]) if present else 0,
                     "accuracy": float(by_group.loc[index, "accuracy"]) if present else float("nan")})
    return pd.DataFrame(rows, columns=["group", "group_index", "n", "accuracy"])


def evaluate_split(model: nn.Module, split: Split, group_names: list[str],
                   device: torch.device | None = None) -> tuple[float, pd.DataFrame]:
    """(overall accuracy, per-group table) of ``model`` on ``split``."""
    logits = predict_logits(model, split.x, device=device)
    pred = logits.argmax(1).numpy()
    y = split.y.numpy()
    overall = float((pred == y).mean()) if len(y) else float("nan")
    return overall, group_accuracy(y, pred, split.group.numpy(), group_names)


def evaluate_model(model: nn.Module, bundle: DatasetBundle, split: str = "test") -> dict[str, Any]:
    """{"split", "overall_accuracy", "worst_group_accuracy", "groups": [{"group", "n", "accuracy"}]}."""
    if split not in bundle.splits:
        raise DatasetError(f"dataset {bundle.name} has no split {brief(split)}; expected one of "
                           f"{', '.join(bundle.splits)}")
    overall, table = evaluate_split(model, bundle.splits[split], bundle.group_names)
    groups = [{"group": r.group, "n": int(r.n), "accuracy": float(r.accuracy)} for r in table.itertuples()]
    present = table.loc[table["n"] > 0, "accuracy"]
    return {"split": split, "overall_accuracy": overall,
            "worst_group_accuracy": float(present.min()) if len(present) else float("nan"), "groups": groups}
