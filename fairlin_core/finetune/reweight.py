"""Group-reweighted finetune objective: the baseline a skeptical reviewer asks the Lagrangian to beat.

Each sample's loss is weighted by the inverse frequency of its group in the training split, so every
group carries equal total weight; the batch objective is the weighted mean.
"""

from __future__ import annotations

from typing import Any

import torch


class GroupReweightedObjective:
    """weights: (num_groups,) inverse training frequencies, normalised to mean 1 over samples."""

    def __init__(self, train_groups: torch.Tensor, num_groups: int) -> None:
        counts = torch.bincount(train_groups, minlength=num_groups).double()
        weights = torch.where(counts > 0, counts.sum() / (num_groups * counts.clamp(min=1)), torch.zeros_like(counts))
        self.weights = weights

    def __call__(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        w = self.weights.to(device=per_sample_loss.device, dtype=per_sample_loss.dtype)[groups]
        return (w * per_sample_loss).sum() / w.sum()

    def end_epoch(self) -> dict[str, Any]:
        return {}
