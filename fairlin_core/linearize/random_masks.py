"""Random placement baseline: keep a uniformly random set of exactly ``budget`` mask entries."""

from __future__ import annotations

import torch
from torch import nn

from ..models import activation_sites


def apply_random_masks(model: nn.Module, budget: int, generator: torch.Generator) -> None:
    """Set the masks of ``model`` in place: ``budget`` entries chosen uniformly over all sites are 1."""
    sites = [site for _, site in activation_sites(model)]
    total = sum(site.alpha.numel() for site in sites)
    keep = torch.zeros(total)
    keep[torch.randperm(total, generator=generator)[:budget]] = 1.0
    offset = 0
    with torch.no_grad():
        for site in sites:
            size = site.alpha.numel()
            site.alpha.copy_(keep[offset:offset + size].view_as(site.alpha))
            site.alpha.requires_grad_(False)
            offset += size
