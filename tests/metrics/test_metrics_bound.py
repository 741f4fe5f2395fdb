"""Theorem 4.4: parameter distance over weights only, and the bound holding on a small smooth model."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairlin_core.data import Split
from fairlin_core.errors import FairLinError
from fairlin_core.metrics.bound import group_losses, parameter_distance, theorem_bound
from fairlin_core.models import activation_sites, build_model, resolve_spec

CPU = torch.device("cpu")
NAMES = ["majority", "minority", "other"]


def smooth_problem():
    """A tanh MLP trained on three Gaussian blobs of unequal size (groups = classes)."""
    generator = torch.Generator().manual_seed(0)
    sizes = (120, 20, 40)
    centers = torch.tensor([[0.0, 0.0], [2.0, 1.0], [0.0, 2.5]])
    x = torch.cat([centers[g] + 0.8 * torch.randn(n, 2, generator=generator) for g, n in enumerate(sizes)])
    y = torch.cat([torch.full((n,), g) for g, n in enumerate(sizes)])
    split = Split(x.double(), y, y.clone())
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(model(split.x), split.y).backward()
        optimizer.step()
    return model.eval(), split


@pytest.mark.parametrize("scale", [0.01, 0.05, 0.2])
def test_bound_holds_for_small_perturbations(scale):
    base, split = smooth_problem()
    perturbed = copy.deepcopy(base)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in perturbed.parameters():
            p.add_(scale * torch.randn(p.shape, generator=generator, dtype=p.dtype))
    table = theorem_bound(base, perturbed, split, NAMES, device=CPU)
    assert list(table.columns) == ["group", "group_index", "n", "grad_norm", "lambda_max", "distance", "bound",
                                   "loss_base", "loss_lin", "excess_loss", "holds"]
    assert table["holds"].all(), table
    assert (table["distance"] == parameter_distance(base, perturbed)).all()
    expected = table["grad_norm"] * table["distance"] + 0.5 * table["lambda_max"] * table["distance"] ** 2
    assert table["bound"].tolist() == pytest.approx(expected.tolist())
    losses = group_losses(perturbed, split, NAMES, device=CPU)
    members = split.group == 1
    assert losses.loc[1, "loss"] == pytest.approx(float(F.cross_entropy(perturbed(split.x[members]).detach(),
                                                                        split.y[members])))


def test_parameter_distance_counts_weights_not_masks_or_counters():
    spec = resolve_spec("resnet18", 10, (1, 8, 8), width=4)
    base = build_model(spec)
    other = copy.deepcopy(base)
    assert parameter_distance(base, other) == 0.0
    with torch.no_grad():
        for _, site in activation_sites(other):
            site.alpha.zero_()
        other.bn1.num_batches_tracked.fill_(100)
        other.bn1.running_mean.add_(1.0)
    assert parameter_distance(base, other) == 0.0
    assert parameter_distance(base, other, include_buffers=True) == pytest.approx(math.sqrt(4))
    with torch.no_grad():
        other.linear.bias[0] += 3.0
        other.conv1.weight[0, 0, 0, 0] -= 4.0
    assert parameter_distance(base, other) == pytest.approx(5.0)


def test_parameter_distance_refuses_different_architectures():
    small = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=4))
    wide = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=8))
    with pytest.raises(FairLinError, match="same architecture"):
        parameter_distance(small, wide)
