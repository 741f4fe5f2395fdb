"""Finetuning of linearized students: plain KD finetune, the mitigations and validation model selection."""

from .fair import (DEFAULT_ETA, DEFAULT_MU, MITIGATIONS, LagrangianFairObjective, MitigationConfig, get_mitigation,
                   mitigation_factory, mitigation_names, register_mitigation)
from .groupdro import GroupDROObjective
from .kd import distillation_loss_per_sample, kd_per_sample, teacher_logits
from .loop import BatchObjective, FinetuneConfig, FinetuneResult, MeanObjective, finetune
from .reweight import GroupReweightedObjective
from .selection import AUTO, DEFAULT_SELECT, SELECTIONS, Selector, resolve_selection, select_epoch

__all__ = ["DEFAULT_ETA", "DEFAULT_MU", "MITIGATIONS", "LagrangianFairObjective", "MitigationConfig", "get_mitigation",
           "mitigation_factory", "mitigation_names", "register_mitigation", "GroupDROObjective",
           "distillation_loss_per_sample", "kd_per_sample", "teacher_logits", "BatchObjective", "FinetuneConfig",
           "FinetuneResult", "MeanObjective", "finetune", "GroupReweightedObjective", "AUTO", "DEFAULT_SELECT", "SELECTIONS",
           "Selector", "resolve_selection", "select_epoch"]
