"""Finetuning of linearized students: plain KD finetune (and the fairness-constrained variant)."""

from .fair import DEFAULT_MU, LagrangianFairObjective, MitigationConfig, mitigation_factory
from .kd import distillation_loss_per_sample, kd_per_sample, teacher_logits
from .loop import BatchObjective, FinetuneConfig, FinetuneResult, MeanObjective, finetune

__all__ = ["DEFAULT_MU", "LagrangianFairObjective", "MitigationConfig", "mitigation_factory", "distillation_loss_per_sample", "kd_per_sample", "teacher_logits", "BatchObjective", "FinetuneConfig",
           "FinetuneResult", "MeanObjective", "finetune"]
