"""Online group DRO (Sagawa et al. 2020, Algorithm 1) on the finetune's KD objective.

Group weights ``q`` (shape (num_groups,), start uniform, sum 1) follow exponentiated-gradient ascent
on the group losses: per batch, ``q_a <- q_a * exp(eta * L_a)`` for every group a present in the
batch (``L_a`` = mean per-sample loss of its members, detached), then ``q /= q.sum()``; the model
minimises ``sum_a q_a * L_a`` over the present groups. With eta -> 0 this is a group-balanced
(reweighted) mean; larger eta moves the weight onto the worst groups faster.
"""

from __future__ import annotations

from typing import Any

import torch

from .loop import group_means


class GroupDROObjective:
    """group_names: names used for the history columns ``q:<group>``; eta: step size per batch (> 0)."""

    def __init__(self, group_names: list[str], eta: float) -> None:
        self.group_names = list(group_names)
        self.eta = float(eta)
        self.q = torch.full((len(group_names),), 1.0 / len(group_names), dtype=torch.float64)

    def __call__(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        group_loss, present = group_means(per_sample_loss, groups, len(self.group_names))
        q = self.q.to(device=per_sample_loss.device, dtype=per_sample_loss.dtype)
        q = q * torch.exp(self.eta * torch.where(present, group_loss.detach(), torch.zeros_like(group_loss)))
        self.q = (q / q.sum()).detach()  # stays on the loss's device: no host sync per batch
        return (self.q * group_loss).sum()

    def end_epoch(self) -> dict[str, Any]:
        return {f"q:{g}": float(v) for g, v in zip(self.group_names, self.q.to("cpu", torch.float64))}
