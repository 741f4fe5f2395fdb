"""Group gradient norms against a brute-force per-group loop; per-sample gradient norms; masks excluded."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fairlin_core.data import Split, load_dataset
from fairlin_core.metrics.gradients import group_gradient_norms, per_sample_gradient_norms, weight_parameters
from fairlin_core.models import activation_sites, build_model, resolve_spec

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def setup():
    """resnet18 width 4 on digits with half of its masks zeroed, in float64 for tight comparisons."""
    torch.manual_seed(0)
    bundle = load_dataset("digits")
    model = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=4)).double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _, site in activation_sites(model):
            site.alpha.copy_((torch.rand(site.alpha.shape, generator=generator) < 0.5).double())
    test = bundle.splits["test"]
    split = Split(test.x.double(), test.y, test.group)
    return model.eval(), split, bundle.group_names


def brute_force(model, split, group_count):
    """For each group: the mean loss over all its samples at once, one backward pass, norm over the weights."""
    params = [p for _, p in weight_parameters(model)]
    norms, losses = [], []
    for group in range(group_count):
        members = split.group == group
        loss = F.cross_entropy(model(split.x[members]), split.y[members])
        grads = torch.autograd.grad(loss, params)
        norms.append(math.sqrt(sum(float((g ** 2).sum()) for g in grads)))
        losses.append(float(loss.detach()))
    return np.array(norms), np.array(losses)


def test_group_norms_match_brute_force(setup):
    model, split, names = setup
    table = group_gradient_norms(model, split, names, batch_size=16, device=CPU)
    norms, losses = brute_force(model, split, len(names))
    assert list(table.columns) == ["group", "group_index", "n", "loss", "grad_norm"]
    np.testing.assert_allclose(table["grad_norm"], norms, rtol=1e-9)
    np.testing.assert_allclose(table["loss"], losses, rtol=1e-9)
    assert table["n"].tolist() == torch.bincount(split.group, minlength=10).tolist()


def test_masks_are_not_weights(setup):
    model, split, names = setup
    mask_ids = {id(site.alpha) for _, site in activation_sites(model)}
    assert not any(id(p) in mask_ids for _, p in weight_parameters(model))
    assert len(weight_parameters(model)) == len(list(model.parameters())) - len(mask_ids)
    before = group_gradient_norms(model, split, names, device=CPU)["grad_norm"]
    for _, site in activation_sites(model):
        site.alpha.requires_grad_(True)  # as during SNL training: still not a weight
    try:
        after = group_gradient_norms(model, split, names, device=CPU)["grad_norm"]
    finally:
        for _, site in activation_sites(model):
            site.alpha.requires_grad_(False)
    np.testing.assert_allclose(after, before, rtol=1e-12)


def test_empty_group_gives_nan(setup):
    model, split, names = setup
    table = group_gradient_norms(model, split, [*names, "nobody"], device=CPU)
    assert math.isnan(table.loc[10, "grad_norm"]) and table.loc[10, "n"] == 0


def test_per_sample_norms_match_single_sample_backward(setup):
    model, split, names = setup
    split = split.subset(torch.arange(70))
    table = per_sample_gradient_norms(model, split, names, batch_size=32, device=CPU)
    assert list(table.columns) == ["index", "group", "group_index", "label", "loss", "grad_norm"]
    assert len(table) == len(split)
    assert (table["group"] == [names[g] for g in split.group.tolist()]).all()
    params = [p for _, p in weight_parameters(model)]
    for i in (0, 7, len(split) - 1):
        loss = F.cross_entropy(model(split.x[i:i + 1]), split.y[i:i + 1])
        grads = torch.autograd.grad(loss, params)
        assert table.loc[i, "grad_norm"] == pytest.approx(math.sqrt(sum(float((g ** 2).sum()) for g in grads)),
                                                          rel=1e-9)
        assert table.loc[i, "loss"] == pytest.approx(float(loss.detach()), rel=1e-9)


def test_model_mode_is_restored(setup):
    model, split, names = setup
    model.train()
    try:
        group_gradient_norms(model, split, names, device=CPU)
        assert model.training
    finally:
        model.eval()
