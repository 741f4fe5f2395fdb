"""Knowledge-distillation losses and teacher-logit caching.

KD_T(s, t) = T^2 * KL(softmax(t / T) || softmax(s / T)), per sample (Hinton et al.; SNL uses T = 4).
The teacher is frozen and in eval mode and the linearizers train without augmentation, so its
logits for every training example are computed once and reused by every epoch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import predict_logits


def kd_per_sample(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N,) distillation loss per sample, scaled by T^2 so gradients keep their size across T."""
    log_student = F.log_softmax(student_logits / temperature, dim=1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=1)
    kl = (log_teacher.exp() * (log_teacher - log_student)).sum(dim=1)
    return kl * temperature ** 2


def distillation_loss_per_sample(student_logits: torch.Tensor, teacher_logits: torch.Tensor, y: torch.Tensor,
                                 temperature: float, ce_weight: float = 1.0, kd_weight: float = 1.0) -> torch.Tensor:
    """(N,) per-sample ``ce_weight * CE + kd_weight * KD_T``; its mean is the population loss."""
    loss = ce_weight * F.cross_entropy(student_logits, y, reduction="none")
    if kd_weight:
        loss = loss + kd_weight * kd_per_sample(student_logits, teacher_logits, temperature)
    return loss


def teacher_logits(teacher: nn.Module, x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(N, num_classes) logits of the frozen teacher in eval mode, on ``device``."""
    return predict_logits(teacher, x, device=device).to(device)
