"""Group Hessian spectra: top eigenvalues by Lanczos and eigenvalue densities by stochastic Lanczos quadrature.

H_a is the Hessian, with respect to every weight of the model (activation masks excluded, see
:func:`~fairlin_core.metrics.gradients.weight_parameters`), of the mean cross-entropy loss (nats) of
group a over a split, in eval mode (batch norm uses running statistics, as the reference does).
It is never formed: :class:`HessianOperator` returns Hessian-vector products by double
backpropagation, on flat vectors of length P (number of weights). When the samples fit in one batch
the gradient graph is built once and reused for every product, as PyHessian does for a single batch.

:func:`lanczos` runs the Lanczos iteration with full reorthogonalization (twice per step); its Ritz
values give the top eigenvalues (:func:`top_eigenvalues`, stopped once an error bound derived from
the Ritz residual ``|beta_m s_m|`` is below ``tol`` relative to the eigenvalue), and its Ritz values
and squared first eigenvector components, averaged over random Rademacher starts, are the nodes and
weights of stochastic Lanczos quadrature (:func:`spectral_density`).

"Top" means largest algebraic eigenvalue, lambda_max of Theorem 4.4 (PyHessian's power iteration
returns the largest in magnitude; the two agree whenever that one is positive, as for trained nets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.linalg import eigh_tridiagonal
from torch import nn

from ..data import Split
from ..limits import check_count
from ..runtime import CancelFlag, ProgressFn, batch_indices, check_cancel, report
from .gradients import evaluating, group_members, weight_parameters

MatVec = Callable[[torch.Tensor], torch.Tensor]


class HessianOperator:
    """v (P,) -> H v (P,), H the Hessian of the mean cross-entropy over ``(x, y)`` w.r.t. the weights.

    The model must already be in eval mode on the device where products are computed; ``x`` (N, ...)
    and ``y`` (N,) are moved there batch by batch. ``hvp_count`` counts the products computed.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, batch_size: int = 512,
                 cancel: CancelFlag | None = None) -> None:
        if len(x) == 0:
            raise ValueError("a Hessian needs at least one sample")
        self.model, self.x, self.y, self.cancel = model, x, y, cancel
        self.params = [p for _, p in weight_parameters(model)]
        self.dim = sum(p.numel() for p in self.params)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        self.hvp_count = 0
        self.batches = list(batch_indices(len(x), batch_size))
        self._cached = self._gradient(self.batches[0]) if len(self.batches) == 1 else None

    def _gradient(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Gradient of the batch's summed loss, with its graph kept for a second backward pass."""
        logits = self.model(self.x[batch].to(self.device))
        loss = F.cross_entropy(logits, self.y[batch].to(self.device), reduction="sum")
        return torch.autograd.grad(loss, self.params, create_graph=True)

    def _product(self, gradient: tuple[torch.Tensor, ...], chunks: list[torch.Tensor], retain: bool) -> torch.Tensor:
        hv = torch.autograd.grad(gradient, self.params, grad_outputs=chunks, retain_graph=retain,
                                 allow_unused=True, materialize_grads=True)
        return torch.cat([h.reshape(-1) for h in hv])

    def __call__(self, v: torch.Tensor) -> torch.Tensor:
        check_cancel(self.cancel)
        chunks = [c.view_as(p) for c, p in zip(torch.split(v, [p.numel() for p in self.params]), self.params)]
        if self._cached is not None:
            total = self._product(self._cached, chunks, retain=True)
        else:
            total = sum(self._product(self._gradient(batch), chunks, retain=False) for batch in self.batches)
        self.hvp_count += 1
        return total.detach() / len(self.x)


@dataclass
class LanczosResult:
    """Ritz values of an m-step Lanczos run and what SLQ and convergence checks need.

    nodes: (m,) Ritz values, ascending. weights: (m,) squared first components of the Ritz vectors
    (they sum to 1). residuals: (m,) ``|beta_m * s_m|``, the residual norm of each Ritz pair.
    """

    nodes: np.ndarray
    weights: np.ndarray
    residuals: np.ndarray

    @property
    def steps(self) -> int:
        return len(self.nodes)

    def error_bounds(self) -> np.ndarray:
        """(m,) bounds on each Ritz value's distance to an eigenvalue: min(r, r^2 / gap), the gap being
        estimated by the distance to the nearest other Ritz value (Parlett, The Symmetric Eigenvalue
        Problem, 11.7); the residual r alone when there is a single Ritz value."""
        if len(self.nodes) < 2:
            return self.residuals.copy()
        distances = np.abs(self.nodes[:, None] - self.nodes[None, :])
        np.fill_diagonal(distances, np.inf)
        gaps = distances.min(1)
        with np.errstate(divide="ignore", invalid="ignore"):
            quadratic = np.where(gaps > 0, self.residuals ** 2 / gaps, np.inf)
        return np.minimum(self.residuals, quadratic)


def _ritz(alphas: list[float], betas: list[float], beta_last: float) -> LanczosResult:
    nodes, vectors = eigh_tridiagonal(np.array(alphas), np.array(betas))
    return LanczosResult(nodes, vectors[0] ** 2, np.abs(beta_last * vectors[-1]))


def lanczos(matvec: MatVec, start: torch.Tensor, max_steps: int, *, top_k: int = 1,
            tol: float | None = None) -> LanczosResult:
    """Lanczos on a symmetric operator from ``start`` (P,), with full reorthogonalization.

    Runs at most ``min(max_steps, P)`` steps and stops early on breakdown (an invariant subspace was
    found, so the Ritz values are exact) or, when ``tol`` is given, once the ``top_k`` largest Ritz
    values all have an error bound (:meth:`LanczosResult.error_bounds`) <= tol * |value|.
    """
    check_count(max_steps, "Lanczos max_steps", "lanczos_steps")
    dim = start.numel()
    steps = min(max_steps, dim)
    if steps < 1:
        raise ValueError(f"Lanczos needs max_steps >= 1 and a non-empty start vector, got {max_steps}, {dim}")
    basis = torch.empty((min(steps, 8), dim), dtype=start.dtype, device=start.device)  # grows by doubling
    basis[0] = start / torch.linalg.vector_norm(start)
    alphas: list[float] = []
    betas: list[float] = []
    scale = beta = 0.0
    for j in range(steps):
        w = matvec(basis[j])
        alpha = float(w @ basis[j])
        alphas.append(alpha)
        for _ in range(2):  # full reorthogonalization, twice is enough
            w = w - basis[:j + 1].T @ (basis[:j + 1] @ w)
        beta = float(torch.linalg.vector_norm(w))
        scale = max(scale, abs(alpha), beta)
        if beta <= 100 * torch.finfo(start.dtype).eps * scale:
            beta = 0.0  # breakdown: the Krylov space is invariant and the Ritz values are exact
            break
        if tol is not None and j + 1 >= top_k and _converged(_ritz(alphas, betas, beta), top_k, tol):
            break
        if j + 1 < steps:
            betas.append(beta)
            if j + 1 == len(basis):
                basis = torch.cat([basis, torch.empty_like(basis[:min(len(basis), steps - len(basis))])])
            basis[j + 1] = w / beta
    return _ritz(alphas, betas, beta)


def _converged(result: LanczosResult, top_k: int, tol: float) -> bool:
    values, bounds = result.nodes[-top_k:], result.error_bounds()[-top_k:]
    return bool(np.all(bounds <= tol * np.maximum(np.abs(values), np.finfo(float).tiny)))


def _group_seed(seed: int, group_index: int) -> int:
    return int(np.random.SeedSequence([seed, group_index]).generate_state(1)[0])


def top_eigenvalues(operator: HessianOperator, k: int = 1, *, tol: float = 1e-3, max_steps: int = 50,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues (k,), error bounds (k,)) of the k largest Ritz values, descending, from a seeded
    Gaussian start; stops once every bound is <= tol * |eigenvalue| (relative error) or after max_steps."""
    start = torch.randn(operator.dim, generator=torch.Generator().manual_seed(seed),
                        dtype=torch.float64)
    result = lanczos(operator, start.to(operator.dtype).to(operator.device), max_steps, top_k=k, tol=tol)
    return result.nodes[::-1][:k].copy(), result.error_bounds()[::-1][:k].copy()


def spectral_density(operator: HessianOperator, *, runs: int = 1, steps: int = 40, grid_size: int = 256,
                     sigma: float | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[LanczosResult]]:
    """Stochastic Lanczos quadrature: (grid (G,), density (G,), per-run Lanczos results).

    Each run starts from a Rademacher vector; the density is the mean over runs of
    ``sum_j weight_j * N(t; node_j, sigma^2)``, evaluated on a grid spanning the Ritz values +- 5 sigma
    and normalised to integrate to 1 (trapezoid rule). sigma defaults to 1% of the Ritz-value range.
    """
    check_count(runs, "spectral density runs", "lanczos_runs")
    generator = torch.Generator().manual_seed(seed)
    results = []
    for _ in range(runs):
        signs = torch.randint(0, 2, (operator.dim,), generator=generator) * 2 - 1
        results.append(lanczos(operator, signs.to(operator.dtype).to(operator.device), steps))
    grid, density = gaussian_density([r.nodes for r in results], [r.weights for r in results],
                                     grid_size=grid_size, sigma=sigma)
    return grid, density, results


def gaussian_density(nodes: list[np.ndarray], weights: list[np.ndarray], *, grid_size: int = 256,
                     sigma: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian-smoothed quadrature density (see :func:`spectral_density`) on a uniform grid."""
    all_nodes = np.concatenate(nodes)
    low, high = float(all_nodes.min()), float(all_nodes.max())
    if sigma is None:
        sigma = 0.01 * (high - low) or 0.01 * max(abs(high), 1e-12)
    grid = np.linspace(low - 5 * sigma, high + 5 * sigma, grid_size)
    density = np.zeros_like(grid)
    for run_nodes, run_weights in zip(nodes, weights):
        density += (run_weights[None, :] * np.exp(-0.5 * ((grid[:, None] - run_nodes[None, :]) / sigma) ** 2)).sum(1)
    density /= np.trapezoid(density, grid)
    return grid, density


def group_hessian_eigenvalues(model: nn.Module, split: Split, group_names: list[str], *, top_k: int = 1,
                              tol: float = 1e-3, max_steps: int = 50, batch_size: int = 512, seed: int = 0,
                              device: torch.device | None = None, progress: ProgressFn | None = None,
                              cancel: CancelFlag | None = None) -> pd.DataFrame:
    """Top-k Hessian eigenvalues of every group's mean loss over ``split``.

    One row per group and rank: group, group_index, n, rank (1 = largest), eigenvalue, error_bound
    (see :meth:`LanczosResult.error_bounds`), hvps (Hessian-vector products used). NaN for empty groups.
    """
    rows = []
    with evaluating(model, device):
        for index, name in enumerate(group_names):
            members = group_members(split, index)
            n = len(members)
            values = bounds = np.full(top_k, np.nan)
            hvps = 0
            if n:
                operator = HessianOperator(model, split.x[members], split.y[members], batch_size=batch_size,
                                           cancel=cancel)
                values, bounds = top_eigenvalues(operator, top_k, tol=tol, max_steps=max_steps,
                                                     seed=_group_seed(seed, index))
                hvps = operator.hvp_count
            for rank in range(top_k):
                found = rank < len(values)
                rows.append({"group": name, "group_index": index, "n": n, "rank": rank + 1,
                             "eigenvalue": float(values[rank]) if found else float("nan"),
                             "error_bound": float(bounds[rank]) if found else float("nan"), "hvps": hvps})
            report(progress, (index + 1) / len(group_names), "hessian", f"group {name}")
    return pd.DataFrame(rows, columns=["group", "group_index", "n", "rank", "eigenvalue", "error_bound", "hvps"])


def group_hessian_density(model: nn.Module, split: Split, group_names: list[str], *, runs: int = 1,
                          steps: int = 40, grid_size: int = 256, sigma: float | None = None, batch_size: int = 512,
                          seed: int = 0, device: torch.device | None = None, progress: ProgressFn | None = None,
                          cancel: CancelFlag | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Eigenvalue density of every group's Hessian by stochastic Lanczos quadrature.

    Returns (density, nodes): density has one row per group and grid point (group, group_index,
    eigenvalue, density; each group's density integrates to 1 over its grid); nodes has one row per
    group, run and Ritz value (group, group_index, run, node, weight; weights of a run sum to 1).
    Groups without samples are left out.
    """
    density_rows, node_rows = [], []
    with evaluating(model, device):
        for index, name in enumerate(group_names):
            members = group_members(split, index)
            if len(members):
                operator = HessianOperator(model, split.x[members], split.y[members], batch_size=batch_size,
                                           cancel=cancel)
                grid, density, results = spectral_density(operator, runs=runs, steps=steps, grid_size=grid_size,
                                                          sigma=sigma, seed=_group_seed(seed, index))
                density_rows.append(pd.DataFrame({"group": name, "group_index": index, "eigenvalue": grid,
                                                  "density": density}))
                node_rows += [pd.DataFrame({"group": name, "group_index": index, "run": run, "node": r.nodes,
                                            "weight": r.weights}) for run, r in enumerate(results)]
            report(progress, (index + 1) / len(group_names), "hessian_density", f"group {name}")
    density_columns = ["group", "group_index", "eigenvalue", "density"]
    node_columns = ["group", "group_index", "run", "node", "weight"]
    return (pd.concat(density_rows, ignore_index=True) if density_rows else pd.DataFrame(columns=density_columns),
            pd.concat(node_rows, ignore_index=True) if node_rows else pd.DataFrame(columns=node_columns))
