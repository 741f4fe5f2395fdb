"""Group Hessians: HVPs and eigenvalues against a closed form, SLQ densities, agreement with PyHessian.

The closed form is for multinomial logistic regression with two classes and cross-entropy (our loss):
for logits z = W x (W: 2 x d, no bias) the Hessian of the mean loss over the flattened W = [w_0; w_1] is

    H = [[1, -1], [-1, 1]]  kron  X^T diag(p (1 - p)) X / n,

p the softmax probability of class 1. Its eigenvalues are 2 * eig(X^T diag(p(1-p)) X / n) and d zeros,
so lambda_max(H) = 2 lambda_max(X^T diag(p(1-p)) X / n), the binary-BCE closed form times 2.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fairlin_core.data import Split, load_dataset
from fairlin_core.metrics.hessian import (HessianOperator, group_hessian_density, group_hessian_eigenvalues,
                                          lanczos, spectral_density, top_eigenvalues)
from fairlin_core.models import build_model, resolve_spec

CPU = torch.device("cpu")


def logistic_problem(n=60, d=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=generator, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=generator)
    model = nn.Linear(d, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.randn(2, d, generator=generator, dtype=torch.float64))
    return model.eval(), x, y


def closed_form(model, x, y):
    p = torch.softmax(model(x), 1)[:, 1].detach()
    a = (x.T * (p * (1 - p))) @ x / len(x)
    return torch.kron(torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64), a), a


def test_hvp_matches_closed_form_cached_and_batched():
    model, x, y = logistic_problem()
    hessian, _ = closed_form(model, x, y)
    v = torch.randn(hessian.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    cached = HessianOperator(model, x, y)
    batched = HessianOperator(model, x, y, batch_size=16)
    assert cached.dim == hessian.shape[0]
    torch.testing.assert_close(cached(v), hessian @ v, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(batched(v), hessian @ v, rtol=1e-10, atol=1e-12)


def test_top_eigenvalues_match_closed_form():
    model, x, y = logistic_problem()
    hessian, a = closed_form(model, x, y)
    exact = torch.linalg.eigvalsh(hessian).flip(0).numpy()
    values, bounds = top_eigenvalues(HessianOperator(model, x, y), 3, tol=1e-10)
    np.testing.assert_allclose(values, exact[:3], rtol=1e-9)
    assert values[0] == pytest.approx(2 * torch.linalg.eigvalsh(a).max().item(), rel=1e-9)
    assert np.all(bounds < 1e-8)


def test_group_table_uses_each_groups_own_samples():
    model, x, y = logistic_problem(n=90)
    group = torch.arange(90) % 3
    group[group == 2] = 1  # group 2 is empty
    table = group_hessian_eigenvalues(model, Split(x, y, group), ["a", "b", "c"], top_k=2, tol=1e-10, device=CPU)
    assert list(table.columns) == ["group", "group_index", "n", "rank", "eigenvalue", "error_bound", "hvps"]
    assert len(table) == 6 and table["rank"].tolist() == [1, 2] * 3
    for index in (0, 1):
        members = group == index
        exact = torch.linalg.eigvalsh(closed_form(model, x[members], y[members])[0]).flip(0)[:2].numpy()
        rows = table[table["group_index"] == index]
        np.testing.assert_allclose(rows["eigenvalue"], exact, rtol=1e-9)
        assert rows["n"].iloc[0] == int(members.sum())
    assert table[table["group"] == "c"]["eigenvalue"].isna().all()


def test_slq_density_integrates_to_one_and_covers_the_spectrum():
    model, x, y = logistic_problem(d=6)
    hessian, _ = closed_form(model, x, y)
    exact = torch.linalg.eigvalsh(hessian).numpy()
    operator = HessianOperator(model, x, y)
    grid, density, results = spectral_density(operator, runs=3, steps=30, grid_size=400)
    assert np.trapezoid(density, grid) == pytest.approx(1.0, abs=1e-9)
    assert np.all(density >= 0)
    assert grid.min() <= exact.min() and grid.max() >= exact.max()
    for result in results:  # steps >= dimension: the quadrature nodes are the exact eigenvalues
        assert result.weights.sum() == pytest.approx(1.0)
        assert result.nodes.max() == pytest.approx(exact.max(), rel=1e-8)
        assert result.nodes.min() == pytest.approx(exact.min(), abs=1e-8)
    peak = density.max()
    for extreme in (exact.min(), exact.max()):
        assert density[np.abs(grid - extreme).argmin()] > 1e-3 * peak


def test_lanczos_stops_on_breakdown_and_tolerance():
    matrix = torch.diag(torch.tensor([5.0, 3.0, 1.0, 0.5], dtype=torch.float64))
    result = lanczos(lambda v: matrix @ v, torch.ones(4, dtype=torch.float64), 50)
    assert result.steps == 4
    np.testing.assert_allclose(np.sort(result.nodes), [0.5, 1.0, 3.0, 5.0], rtol=1e-12)
    big = torch.diag(torch.linspace(0.0, 1.0, 200, dtype=torch.float64) ** 4 * 10)
    early = lanczos(lambda v: big @ v, torch.ones(200, dtype=torch.float64), 100, top_k=1, tol=1e-4)
    assert early.steps < 100
    assert abs(early.nodes[-1] - 10.0) <= 1e-4 * 10


def test_density_table_per_group():
    model, x, y = logistic_problem(n=40, d=4)
    split = Split(x, y, torch.arange(40) % 2)
    density, nodes = group_hessian_density(model, split, ["a", "b"], runs=2, steps=8, grid_size=100, device=CPU)
    assert set(density["group"]) == {"a", "b"} and len(density) == 200
    for _, rows in density.groupby("group"):
        assert np.trapezoid(rows["density"], rows["eigenvalue"]) == pytest.approx(1.0)
    assert nodes.groupby(["group", "run"])["weight"].sum().to_numpy() == pytest.approx(np.ones(4))


def trained_mlp(split, steps=150):
    torch.manual_seed(0)
    model = build_model(resolve_spec("mlp", 10, (1, 8, 8), depth=2, width=16))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        F.cross_entropy(model(split.x), split.y).backward()
        optimizer.step()
    return model.eval()


@pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True")
def test_top_eigenvalue_agrees_with_pyhessian():
    import pyhessian  # dev requirement (pyhessian==0.1); only its eigenvalues() is used, density() needs torch.eig
    bundle = load_dataset("digits")
    model = trained_mlp(bundle.splits["train"])
    test = bundle.splits["test"]
    for group in (0, 7):  # a majority and a minority group
        members = test.group == group
        x, y = test.x[members], test.y[members]
        ours, _ = top_eigenvalues(HessianOperator(model, x, y), 1, tol=1e-4)
        torch.manual_seed(0)
        theirs, _ = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(
            maxIter=300, tol=1e-6)
        model.zero_grad(set_to_none=True)
        assert ours[0] > 0
        assert ours[0] == pytest.approx(theirs[0], rel=0.02)
