"""The linearizable activation site and ReLU accounting.

Every activation of a FairLin model is one :class:`LinearizableReLU` holding a per-element mask
``alpha`` with the activation's shape (C, H, W) or (features,):

    y = alpha * relu(x) + (1 - alpha) * x

alpha = 1 is a ReLU, alpha = 0 the identity. A ReLU is counted as "on" when alpha > threshold
(SNL's 1e-2), so a model's ReLU count is the number of such mask entries.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

RELU_THRESHOLD = 1e-2


class LinearizableReLU(nn.Module):
    """ReLU with a per-element mask; ``alpha`` is a parameter frozen unless a linearizer trains it.

    shape: the activation's shape without the batch dimension, e.g. (64, 32, 32) or (128,).
    stage, role: where the site sits (ResNets: stage 1..4, role ``inner`` after bn1 or ``output``
    after the residual add); used by stage-wise linearizers such as DeepReDuce.
    """

    def __init__(self, shape: tuple[int, ...], stage: int = 0, role: str = "") -> None:
        super().__init__()
        self.shape = tuple(int(s) for s in shape)
        self.stage = stage
        self.role = role
        self.alpha = nn.Parameter(torch.ones(self.shape), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # alpha*relu(x) + (1-alpha)*x == x + alpha*relu(-x): one elementwise kernel fewer.
        return torch.addcmul(x, self.alpha, F.relu(-x))

    def relu_count(self, threshold: float = RELU_THRESHOLD) -> int:
        return int((self.alpha.detach() > threshold).sum())

    def extra_repr(self) -> str:
        return f"shape={self.shape}, stage={self.stage}, role={self.role!r}"


def activation_sites(model: nn.Module) -> Iterator[tuple[str, LinearizableReLU]]:
    """(qualified name, site) for every activation site of ``model`` in forward order."""
    for name, module in model.named_modules():
        if isinstance(module, LinearizableReLU):
            yield name, module


def mask_names(model: nn.Module) -> frozenset[str]:
    """The state-dict keys of every site's mask (``<site>.alpha``, e.g. ``layer1.0.relu1.alpha``); names only, so
    ``model`` may live on the meta device."""
    return frozenset(f"{name}.alpha" for name, _ in activation_sites(model))


def relu_count(model: nn.Module, threshold: float = RELU_THRESHOLD) -> int:
    """Number of mask entries above ``threshold`` over all sites (the model's ReLU count)."""
    return sum(site.relu_count(threshold) for _, site in activation_sites(model))


def total_sites(model: nn.Module) -> int:
    """Number of mask entries over all sites (the ReLU count with every site on)."""
    return sum(site.alpha.numel() for _, site in activation_sites(model))


def site_table(model: nn.Module, threshold: float = RELU_THRESHOLD) -> pd.DataFrame:
    """Tidy table, one row per site: site, stage, role, shape, size, relu_count."""
    rows = [{"site": name, "stage": site.stage, "role": site.role, "shape": list(site.shape),
             "size": site.alpha.numel(), "relu_count": site.relu_count(threshold)}
            for name, site in activation_sites(model)]
    return pd.DataFrame(rows, columns=["site", "stage", "role", "shape", "size", "relu_count"])


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Copies of every site's alpha, keyed by site name."""
    return {name: site.alpha.detach().clone() for name, site in activation_sites(model)}


def set_masks(model: nn.Module, masks: dict[str, torch.Tensor]) -> None:
    """Load alphas by site name; every site must be given, with its exact shape."""
    sites = dict(activation_sites(model))
    if set(masks) != set(sites):
        missing, extra = sorted(set(sites) - set(masks)), sorted(set(masks) - set(sites))
        raise ValueError(f"mask names do not match the model's sites: missing {missing}, unexpected {extra}")
    with torch.no_grad():
        for name, site in sites.items():
            site.alpha.copy_(masks[name].to(site.alpha.device))


def set_stage_masks(model: nn.Module, cull: tuple[int, ...] = (), thin: bool = False) -> None:
    """DeepReDuce's masks, in place: 0 for every site of a culled stage and, with ``thin``, for every
    post-add site (role ``output``) elsewhere; 1 for the rest (a stem site, stage 0, is never culled).

    cull: 1-based stages; ValueError naming the model's stages when one does not exist.
    """
    stages = sorted({site.stage for _, site in activation_sites(model)} - {0})
    bad = [s for s in cull if s not in stages]
    if bad:
        raise ValueError(f"cannot cull stage(s) {bad}: the model has stages {stages}")
    with torch.no_grad():
        for _, site in activation_sites(model):
            culled = site.stage in cull and site.stage != 0
            thinned = thin and site.role == "output"
            site.alpha.fill_(0.0 if culled or thinned else 1.0)
