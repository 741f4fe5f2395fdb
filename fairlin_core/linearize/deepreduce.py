"""DeepReDuce configurations (Jha et al. 2021): stage culling, thinning and a stride-2 stem.

Culling a stage linearizes every activation of its blocks; thinning linearizes the post-add
activation (role ``output``) of every block in the stages that keep their ReLUs; a stride-2 stem
(rho = 0.5) is an architecture option (``stem_stride=2``) that shrinks every map 4x.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import FairLinError
from ..models import activation_sites
from ..models.resnet import ResNet


@dataclass(frozen=True)
class DeepReduceConfig:
    """cull: 1-based stage indices whose ReLUs are all removed; thin: drop post-add ReLUs elsewhere."""

    cull: tuple[int, ...] = ()
    thin: bool = False

    def describe(self) -> str:
        culled = "stages " + ",".join(map(str, self.cull)) + " culled" if self.cull else "no stage culled"
        return culled + (" + thinned" if self.thin else "")


def apply_deepreduce(model: nn.Module, config: DeepReduceConfig) -> None:
    """Set the masks of a ResNet in place: 0 for culled/thinned sites, 1 elsewhere."""
    if not isinstance(model, ResNet):
        raise FairLinError(f"DeepReDuce works on ResNets (resnet18, resnet34) only, got {type(model).__name__}; "
                           f"use snl or random for other architectures")
    stages = sorted({site.stage for _, site in activation_sites(model)})
    bad = [s for s in config.cull if s not in stages]
    if bad:
        raise FairLinError(f"cannot cull stage(s) {bad}: the model has stages {stages}")
    with torch.no_grad():
        for _, site in activation_sites(model):
            culled = site.stage in config.cull
            thinned = config.thin and site.role == "output"
            site.alpha.fill_(0.0 if culled or thinned else 1.0)
