"""Mitigations: fairness-aware batch objectives for the KD finetune, one protocol, looked up by name.

A mitigation turns the per-sample KD losses of a batch (and the batch's group ids) into the scalar the
finetune minimises (:class:`~fairlin_core.finetune.loop.BatchObjective`). Built in:

``lagrangian`` -- the paper's Algorithm 1. Per batch, with population loss ``L`` (mean of CE + KD over
the batch) and group losses ``L_a`` (mean over the batch's members of group a), the violations are
``v_a = |L_a - L|`` (divided by ``L``, detached, when ``normalize``: then mu means the same whatever
the loss scale of the dataset) and the objective is

    L + sum_a lambda_a * max(v_a - tolerance, 0)

back-propagated through the penalty (the public reference builds the penalty as a detached tensor,
so its gradient is zero and its "mitigation" equals plain finetuning). Groups absent from a batch
contribute nothing. After each epoch ``lambda_a += mu * max(mean_v_a - tolerance, 0)`` where
``mean_v_a`` is group a's mean violation over the epoch's batches that contained it, then the
multipliers are projected onto ``[0, lambda_max]`` (no upper bound when None).

``reweight`` -- every sample's loss weighted by the inverse training frequency of its group
(:mod:`.reweight`). ``groupdro`` -- Sagawa et al. 2020's online group DRO (:mod:`.groupdro`).

mu: the paper's ablation uses {0.0005, 0.005, 0.01}; the default 0.01 is the largest of those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import torch

from ..data import DatasetBundle
from ..errors import FairLinError, brief
from ..limits import NON_NEGATIVE, POSITIVE, check_real
from ..registry import Registry
from .groupdro import GroupDROObjective
from .loop import BatchObjective, group_means
from .reweight import GroupReweightedObjective

DEFAULT_MU = 0.01
DEFAULT_ETA = 0.01  # Sagawa et al.'s step size; 0.1 collapses digits with random masks (issue-17 evidence)
NONE = "none"


@dataclass(frozen=True)
class MitigationConfig:
    """One mitigation and its settings; each method reads only its own fields.

    method: ``lagrangian``, ``reweight`` or ``groupdro`` (see :data:`MITIGATIONS`).
    lagrangian: mu (multiplier step size per epoch), tolerance (violations up to this are free),
    normalize (violations relative to the population loss), lambda_max (multiplier cap; None = none).
    groupdro: eta (exponentiated-gradient step size per batch).
    """

    method: str = "lagrangian"
    mu: float = DEFAULT_MU
    tolerance: float = 0.0
    normalize: bool = False
    lambda_max: float | None = None
    eta: float = DEFAULT_ETA

    def validate(self) -> None:
        get_mitigation(self.method)
        check_real(self.mu, "mitigation mu", POSITIVE)
        check_real(self.tolerance, "mitigation tolerance", NON_NEGATIVE)
        if not isinstance(self.normalize, bool):
            raise FairLinError(f"mitigation normalize must be true or false, got {brief(self.normalize)}")
        if self.lambda_max is not None:
            check_real(self.lambda_max, "mitigation lambda_max", POSITIVE)  # None: no cap
        check_real(self.eta, "mitigation eta", POSITIVE)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def coerce(cls, value: "MitigationConfig | dict[str, Any] | str | None") -> "MitigationConfig | None":
        """None or ``"none"`` (no mitigation), a method name (``"groupdro"``), a config, or its fields as a
        dict (e.g. ``{"method": "lagrangian", "mu": 0.01}``; method defaults to lagrangian), validated."""
        if value is None or value == NONE:
            return None
        if isinstance(value, str):
            value = cls(method=value)
        elif isinstance(value, dict):
            unknown = sorted(set(value) - {f.name for f in fields(cls)})
            if unknown:
                raise FairLinError(f"unknown mitigation field(s) {', '.join(unknown)}; valid: "
                                   f"{', '.join(f.name for f in fields(cls))}")
            value = cls(**value)
        if not isinstance(value, cls):
            raise FairLinError(f"mitigation must be None, a method name ({', '.join(mitigation_names())}), a "
                               f"MitigationConfig or a dict such as {{'method': 'lagrangian', 'mu': 0.01}}, "
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
        population = per_sample_loss.mean()
        group_loss, present = group_means(per_sample_loss, groups, len(self.group_names))
        violations = torch.where(present, (group_loss - population).abs(), torch.zeros_like(group_loss))
        if self.config.normalize:
            violations = violations / population.detach().clamp(min=1e-12)
        excess = torch.clamp(violations - self.config.tolerance, min=0.0)
        lambdas = self.lambdas.to(device=per_sample_loss.device, dtype=per_sample_loss.dtype)
        return (lambdas * excess).sum(), violations, present

    def __call__(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        penalty, violations, present = self.penalty(per_sample_loss, groups)
        self._violation_sum += violations.detach().to("cpu", torch.float64)
        self._batches_seen += present.to("cpu", torch.float64)
        return per_sample_loss.mean() + penalty

    def end_epoch(self) -> dict[str, Any]:
        """Update the multipliers from the epoch's mean violations, project them onto [0, lambda_max];
        returns them (and the violations) for the history."""
        mean_violation = self._violation_sum / self._batches_seen.clamp(min=1)
        self.lambdas += self.config.mu * torch.clamp(mean_violation - self.config.tolerance, min=0.0)
        self.lambdas.clamp_(min=0.0, max=self.config.lambda_max)
        row = {f"lambda:{g}": float(v) for g, v in zip(self.group_names, self.lambdas)}
        row.update({f"violation:{g}": float(v) for g, v in zip(self.group_names, mean_violation)})
        self._violation_sum.zero_()
        self._batches_seen.zero_()
        return row


class Mitigation(Protocol):
    """Builds a fresh batch objective for one finetune from the dataset (group names, training groups)."""

    def __call__(self, bundle: DatasetBundle, config: MitigationConfig) -> BatchObjective: ...


MITIGATIONS: Registry[Mitigation] = Registry("mitigation", reserved=(NONE,))


def register_mitigation(name: str, build: Mitigation) -> Mitigation:
    """Make ``build`` usable by name everywhere a mitigation is taken (API, CLI, job configs, grid)."""
    return MITIGATIONS.register(name, build)


def mitigation_names() -> tuple[str, ...]:
    """``none`` then every registered method, in registration order."""
    return MITIGATIONS.names()


def get_mitigation(name: str) -> Mitigation:
    return MITIGATIONS.lookup(name)


register_mitigation("lagrangian", lambda bundle, config: LagrangianFairObjective(list(bundle.group_names), config))
register_mitigation("reweight", lambda bundle, config: GroupReweightedObjective(bundle.splits["train"].group,
                                                                                len(bundle.group_names)))
register_mitigation("groupdro", lambda bundle, config: GroupDROObjective(list(bundle.group_names), config.eta))


def mitigation_factory(bundle: DatasetBundle,
                       config: MitigationConfig | None) -> Callable[[], BatchObjective] | None:
    """A fresh objective per finetune (None when mitigation is off), for ``finish(objective_factory=...)``."""
    if config is None:
        return None
    config.validate()
    build = get_mitigation(config.method)
    return lambda: build(bundle, config)
