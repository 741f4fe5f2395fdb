"""Distance to the decision boundary: softmax margin range, exact input margin for a linear model."""

import numpy as np
import pytest
import torch
from torch import nn

from fairlin_core.data import Split, load_dataset
from fairlin_core.metrics.boundary import SAMPLE_COLUMNS, boundary_distances, boundary_summary
from fairlin_core.models import build_model, resolve_spec

CPU = torch.device("cpu")


def linear_problem(n=50, d=6, classes=4):
    generator = torch.Generator().manual_seed(0)
    model = nn.Linear(d, classes).double().eval()
    with torch.no_grad():
        model.weight.copy_(torch.randn(classes, d, generator=generator, dtype=torch.float64))
        model.bias.copy_(torch.randn(classes, generator=generator, dtype=torch.float64))
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    return model, Split(x, torch.randint(0, classes, (n,), generator=generator), torch.arange(n) % 3)


def test_input_margin_is_the_exact_distance_for_a_linear_model():
    model, split = linear_problem()
    table = boundary_distances(model, split, ["a", "b", "c"], batch_size=16, device=CPU)
    assert list(table.columns) == SAMPLE_COLUMNS and len(table) == len(split)
    logits = model(split.x).detach()
    top = logits.topk(2, dim=1).indices
    weight = model.weight.detach()
    for i in range(len(split)):
        first, second = top[i].tolist()
        normal = weight[first] - weight[second]
        distance = float((logits[i, first] - logits[i, second]) / normal.norm())
        assert table.loc[i, "input_margin"] == pytest.approx(distance, rel=1e-10)
        # the point moved by that distance towards the plane ties the two logits
        projected = split.x[i] - distance * normal / normal.norm()
        tied = model(projected).detach()
        assert float(tied[first] - tied[second]) == pytest.approx(0.0, abs=1e-10)
    assert (table["prediction"] == logits.argmax(1).numpy()).all()
    assert (table["correct"] == (table["prediction"] == table["label"])).all()


def test_softmax_margin_is_top1_minus_top2_probability():
    torch.manual_seed(0)
    bundle = load_dataset("digits")
    model = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=4)).eval()
    split = bundle.splits["test"]
    table = boundary_distances(model, split, bundle.group_names, device=CPU)
    probs = torch.softmax(model(split.x), 1).detach().sort(1, descending=True).values
    np.testing.assert_allclose(table["softmax_margin"], (probs[:, 0] - probs[:, 1]).numpy(), rtol=1e-5, atol=1e-7)
    assert table["softmax_margin"].between(0, 1).all()
    assert (table["input_margin"].dropna() >= 0).all()


def test_summary_per_group():
    model, split = linear_problem()
    samples = boundary_distances(model, split, ["a", "b", "c"], device=CPU)
    summary = boundary_summary(samples, ["a", "b", "c", "empty"])
    expected = samples.groupby("group_index")["input_margin"].agg(["mean", "median"])
    np.testing.assert_allclose(summary["input_margin_mean"].iloc[:3], expected["mean"])
    np.testing.assert_allclose(summary["input_margin_median"].iloc[:3], expected["median"])
    assert summary["n"].tolist() == [17, 17, 16, 0]
    assert np.isnan(summary.loc[3, "softmax_margin_mean"])
