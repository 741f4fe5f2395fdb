"""Captum attributions per group: map shapes, exact values for a linear model, no activation-hooking methods."""

import numpy as np
import pytest
import torch
from torch import nn

from fairlin_core.data import Split, load_dataset
from fairlin_core.errors import FairLinError
from fairlin_core.metrics.attributions import ATTRIBUTION_METHODS, attribution_map, group_attributions
from fairlin_core.models import build_model, resolve_spec

CPU = torch.device("cpu")


def test_maps_have_the_input_shape_for_a_linearizable_resnet():
    torch.manual_seed(0)
    bundle = load_dataset("digits")
    model = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=4)).eval()
    split = bundle.splits["val"]
    table = group_attributions(model, split, bundle.group_names, n_steps=8, device=CPU)
    assert list(table.columns) == ["group", "group_index", "n", "method", "element", "value"]
    assert set(table["method"]) == set(ATTRIBUTION_METHODS) and set(table["group"]) == set(bundle.group_names)
    for method in ATTRIBUTION_METHODS:
        heatmap = attribution_map(table, "5", method, bundle.input_shape)
        assert heatmap.shape == (1, 8, 8) and np.all(heatmap >= 0) and heatmap.sum() > 0


def test_linear_model_attributions_are_exact():
    generator = torch.Generator().manual_seed(0)
    model = nn.Linear(4, 3).double().eval()
    x = torch.randn(30, 4, generator=generator, dtype=torch.float64)
    y = torch.arange(30) % 3
    split = Split(x, y, y.clone())  # group = class, so each group has one target row of W
    table = group_attributions(model, split, ["a", "b", "c"], n_steps=16, device=CPU)
    weight = model.weight.detach()
    for index, name in enumerate("abc"):
        members = x[y == index]
        saliency = attribution_map(table, name, "saliency", (4,))
        np.testing.assert_allclose(saliency, weight[index].abs().numpy(), rtol=1e-10)
        integrated = attribution_map(table, name, "integrated_gradients", (4,))  # exact: x * w for a linear model
        np.testing.assert_allclose(integrated, (members * weight[index]).abs().mean(0).numpy(), rtol=1e-6)


def test_activation_hooking_methods_are_refused():
    model = nn.Linear(4, 3)
    split = Split(torch.randn(6, 4), torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long))
    with pytest.raises(FairLinError, match="DeepLift"):
        group_attributions(model, split, ["a"], methods=["deeplift"], device=CPU)
    with pytest.raises(FairLinError, match="target"):
        group_attributions(model, split, ["a"], target="logit", device=CPU)
