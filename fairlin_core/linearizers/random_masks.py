"""Random placement baseline: keep a uniformly random set of exactly ``budget`` mask entries."""

from __future__ import annotations

import copy
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from ..data import DatasetBundle
from ..models import ModelSpec, activation_sites
from ..runtime import CancelFlag, ProgressFn
from .options import LinearizeOptions
from .base import Linearizer, Placement, register_linearizer



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


class RandomMasks(Linearizer):
    """Uniform random placement; every budget draws from its own generator seeded with ``seed``."""

    name = "random"

    def place_masks(self, base: nn.Module, base_spec: ModelSpec, bundle: DatasetBundle, budgets: Sequence[int],
                    options: LinearizeOptions, *, seed: int, device: torch.device,
                    progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> list[Placement]:
        placements = []
        for budget in budgets:
            student = copy.deepcopy(base)
            apply_random_masks(student, budget, torch.Generator().manual_seed(seed))
            placements.append(Placement(student, base_spec, {"placement": "uniform random"}, pd.DataFrame()))
        return placements


register_linearizer(RandomMasks())
