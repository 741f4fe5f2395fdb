"""Fairness-constrained KD finetune: the paper's Algorithm 1 (Lagrangian group-loss constraints).

Per batch, with population loss ``L`` (mean of CE + KD over the batch) and group losses ``L_a`` (mean
over the batch's members of group a), the violations are ``v_a = |L_a - L|`` and the objective is

    L + sum_a lambda_a * max(v_a - tolerance, 0)

back-propagated through the penalty (the public reference builds the penalty as a detached tensor,
so its gradient is zero and its "mitigation" equals plain finetuning). Groups absent from a batch
contribute nothing; a group with a single sample in the batch still counts. After each epoch,
``lambda_a += mu * max(mean_v_a - tolerance, 0)`` where ``mean_v_a`` is the mean violation of group
a over the epoch's batches that contained it; multipliers never decrease.

mu: the paper's ablation uses {0.0005, 0.005, 0.01}; the default 0.01 is the largest of those. On
the embedded digits (about 10 batches per epoch, 20 epochs) larger values (0.05-0.5) are needed for
the multipliers to grow enough to matter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from ..errors import FairLinError

DEFAULT_MU = 0.01


@dataclass(frozen=True)
class MitigationConfig:
    """mu: multiplier step size; tolerance: violations up to this are not penalised."""

    mu: float = DEFAULT_MU
    tolerance: float = 0.0

    def validate(self) -> None:
        if not self.mu > 0:
            raise FairLinError(f"mitigation mu must be > 0, got {self.mu}")
        if self.tolerance < 0:
            raise FairLinError(f"mitigation tolerance must be >= 0, got {self.tolerance}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def coerce(cls, value: "MitigationConfig | dict[str, Any] | None") -> "MitigationConfig | None":
        """None (no mitigation), a config, or its fields as a dict (e.g. ``{"mu": 0.01}``), validated."""
        if value is None:
            return None
        if isinstance(value, dict):
            value = cls(**value)
        if not isinstance(value, cls):
            raise FairLinError(f"mitigation must be None, a MitigationConfig or a dict such as {{'mu': 0.01}}, "
                               f"got {type(value).__name__}")
        value.validate()
        return value


class LagrangianFairObjective:
    """Batch objective of Algorithm 1 with per-group multipliers ``lambdas`` (shape (num_groups,)).

    group_names: names used for the history columns ``lambda:<group>`` and ``violation:<group>``.
    """

    def __init__(self, group_names: list[str], config: MitigationConfig) -> None:
        config.validate()
        self.group_names = list(group_names)
        self.config = config
        self.lambdas = torch.zeros(len(group_names), dtype=torch.float64)
        self._violation_sum = torch.zeros(len(group_names), dtype=torch.float64)
        self._batches_seen = torch.zeros(len(group_names), dtype=torch.float64)

    def penalty(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                    torch.Tensor]:
        """(penalty scalar, violations (G,), present mask (G,)) for one batch; differentiable."""
        num_groups = len(self.group_names)
        population = per_sample_loss.mean()
        sums = torch.zeros(num_groups, dtype=per_sample_loss.dtype, device=per_sample_loss.device)
        sums = sums.index_add(0, groups, per_sample_loss)
        counts = torch.bincount(groups, minlength=num_groups).to(per_sample_loss.dtype)
        present = counts > 0
        group_loss = sums / counts.clamp(min=1)
        violations = torch.where(present, (group_loss - population).abs(), torch.zeros_like(group_loss))
        excess = torch.clamp(violations - self.config.tolerance, min=0.0)
        lambdas = self.lambdas.to(device=per_sample_loss.device, dtype=per_sample_loss.dtype)
        return (lambdas * excess).sum(), violations, present

    def __call__(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        penalty, violations, present = self.penalty(per_sample_loss, groups)
        self._violation_sum += violations.detach().to("cpu", torch.float64)
        self._batches_seen += present.to("cpu", torch.float64)
        return per_sample_loss.mean() + penalty

    def end_epoch(self) -> dict[str, Any]:
        """Update the multipliers from the epoch's mean violations; returns them for the history."""
        mean_violation = self._violation_sum / self._batches_seen.clamp(min=1)
        self.lambdas += self.config.mu * torch.clamp(mean_violation - self.config.tolerance, min=0.0)
        row = {f"lambda:{g}": float(v) for g, v in zip(self.group_names, self.lambdas)}
        row.update({f"violation:{g}": float(v) for g, v in zip(self.group_names, mean_violation)})
        self._violation_sum.zero_()
        self._batches_seen.zero_()
        return row


def mitigation_factory(group_names: list[str],
                       config: MitigationConfig | None) -> Callable[[], LagrangianFairObjective] | None:
    """A fresh objective per finetune (None when mitigation is off), for ``linearize(objective_factory=...)``."""
    if config is None:
        return None
    config.validate()
    return lambda: LagrangianFairObjective(group_names, config)
