"""Distance of every sample to the model's decision boundary, and its per-group summary.

Two measures per sample, both about the boundary between the predicted class (top-1) and the
runner-up (top-2):

- ``softmax_margin`` = p_top1 - p_top2, the reference implementation's measure; in [0, 1], unitless.
- ``input_margin`` = (z_top1 - z_top2) / ||grad_x (z_top1 - z_top2)||, the logit margin over the norm
  of its input gradient: the first-order distance, in input units (normalised pixels), to where the
  two logits tie. For a linear model z = W x + b it is exactly the distance to the hyperplane on which
  the top-1 and top-2 logits are equal. NaN where the input gradient is zero.

Computed in eval mode, so samples do not interact and one backward pass gives every input gradient.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..data import Split
from ..runtime import CancelFlag, ProgressFn, batch_indices, check_cancel, report
from .gradients import evaluating

_MEASURES = ["prediction", "softmax_margin", "logit_margin", "input_gradient_norm", "input_margin"]
SAMPLE_COLUMNS = ["index", "group", "group_index", "label", "prediction", "correct", "softmax_margin",
                  "logit_margin", "input_gradient_norm", "input_margin"]


def boundary_distances(model: nn.Module, split: Split, group_names: list[str], *, batch_size: int = 256,
                       device: torch.device | None = None, progress: ProgressFn | None = None,
                       cancel: CancelFlag | None = None) -> pd.DataFrame:
    """One row per sample of ``split``: index, group, group_index, label, prediction, correct,
    softmax_margin, logit_margin (z_top1 - z_top2), input_gradient_norm, input_margin."""
    columns: dict[str, list[np.ndarray]] = {c: [] for c in _MEASURES}
    with evaluating(model, device) as device:
        batches = list(batch_indices(len(split), batch_size))
        for step, batch in enumerate(batches):
            check_cancel(cancel)
            x = split.x[batch].to(device).requires_grad_(True)
            logits = model(x)
            top = logits.detach().topk(2, dim=1).indices
            margin = logits.gather(1, top[:, :1]).squeeze(1) - logits.gather(1, top[:, 1:]).squeeze(1)
            (input_grad,) = torch.autograd.grad(margin.sum(), x)
            margin = margin.detach()
            grad_norm = input_grad.flatten(1).norm(dim=1)
            probs = logits.detach().softmax(1).gather(1, top)
            input_margin = torch.where(grad_norm > 0, margin / grad_norm, torch.full_like(margin, float("nan")))
            for column, values in zip(_MEASURES, (top[:, 0], probs[:, 0] - probs[:, 1], margin, grad_norm,
                                                  input_margin)):
                columns[column].append(values.cpu().numpy())
            report(progress, (step + 1) / len(batches), "boundary", f"batch {step + 1}/{len(batches)}")
    group, label = split.group.numpy(), split.y.numpy()
    table = pd.DataFrame({"index": np.arange(len(split)), "group": [group_names[g] for g in group],
                          "group_index": group, "label": label,
                          **{c: np.concatenate(v) if v else np.empty(0) for c, v in columns.items()}})
    table["correct"] = table["prediction"].to_numpy() == label
    return table[SAMPLE_COLUMNS]


def boundary_summary(samples: pd.DataFrame, group_names: list[str]) -> pd.DataFrame:
    """One row per group of a :func:`boundary_distances` table: group, group_index, n, and the mean and
    median of softmax_margin and input_margin (NaN for groups without samples)."""
    rows = []
    for index, name in enumerate(group_names):
        members = samples[samples["group_index"] == index]
        rows.append({"group": name, "group_index": index, "n": len(members),
                     "softmax_margin_mean": members["softmax_margin"].mean(),
                     "softmax_margin_median": members["softmax_margin"].median(),
                     "input_margin_mean": members["input_margin"].mean(),
                     "input_margin_median": members["input_margin"].median()})
    return pd.DataFrame(rows)
