"""Geometry of small ReLU networks: decision grids, linear regions, and the Appendix B.1 1D example.

Coordinates are the raw ``toy2d`` units (the plane is about [-1, 1]^2); a model's "activation
pattern" is which of its ReLU sites are on for an input, so distinct patterns count linear regions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import DatasetBundle
from ..errors import FairLinError
from ..models import RELU_THRESHOLD, activation_sites, build_model, relu_count, resolve_spec, total_sites

GRID_PAD = 0.1


@dataclass(frozen=True)
class BoundaryGrid:
    """A model's decision on a regular grid.

    xs: (W,) and ys: (H,) grid coordinates; proba: (H, W) probability of class 1 (the minority), row i
    at ys[i]; predicted: (H, W) argmax class. extent = (x_min, x_max, y_min, y_max).
    """

    xs: np.ndarray
    ys: np.ndarray
    proba: np.ndarray
    predicted: np.ndarray

    @property
    def extent(self) -> tuple[float, float, float, float]:
        return float(self.xs[0]), float(self.xs[-1]), float(self.ys[0]), float(self.ys[-1])


def data_extent(bundle: DatasetBundle, pad: float = GRID_PAD) -> tuple[float, float, float, float]:
    """(x_min, x_max, y_min, y_max) over every split's points, widened by ``pad`` on each side."""
    points = torch.cat([split.x for split in bundle.splits.values()])
    low, high = points.min(0).values.tolist(), points.max(0).values.tolist()
    return low[0] - pad, high[0] + pad, low[1] - pad, high[1] + pad


def _grid_points(extent: tuple[float, float, float, float], resolution: int) -> tuple[np.ndarray, np.ndarray,
                                                                                       torch.Tensor]:
    xs = np.linspace(extent[0], extent[1], resolution)
    ys = np.linspace(extent[2], extent[3], resolution)
    gx, gy = np.meshgrid(xs, ys)
    return xs, ys, torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], 1).astype(np.float32))


@torch.no_grad()
def _forward(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` in eval mode on the model's device (its train/eval flag is restored), on CPU."""
    was_training = model.training
    try:
        return model.eval()(x.to(next(model.parameters()).device)).float().cpu()
    finally:
        model.train(was_training)


def decision_grid(model: nn.Module, extent: tuple[float, float, float, float], resolution: int = 200) -> BoundaryGrid:
    """Evaluate ``model`` on a ``resolution`` x ``resolution`` grid over ``extent``."""
    xs, ys, points = _grid_points(extent, resolution)
    logits = _forward(model, points)
    shape = (resolution, resolution)
    return BoundaryGrid(xs, ys, logits.softmax(1)[:, 1].numpy().reshape(shape), logits.argmax(1).numpy().reshape(shape))


def activation_patterns(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """Bool (N, U) activation pattern of every input row of ``x`` (N, D) over the U hidden units.

    A ReLU unit's bit is "pre-activation > 0"; a linearized unit (alpha <= 1e-2) is the identity on
    every input, so its bit is constant (True) and it splits no region.
    """
    captured: list[torch.Tensor] = []
    hooks = [site.register_forward_hook(lambda module, inputs, output: captured.append(
        (inputs[0] > 0) | (module.alpha <= RELU_THRESHOLD))) for _, site in activation_sites(model)]
    try:
        _forward(model, x)
    finally:
        for hook in hooks:
            hook.remove()
    return torch.cat([c.flatten(1) for c in captured], 1).cpu().numpy()


def count_patterns(patterns: np.ndarray) -> int:
    """Number of distinct rows of a bool (N, U) pattern array."""
    if patterns.shape[1] == 0:
        return 1
    return int(np.unique(np.packbits(patterns, axis=1), axis=0).shape[0])


def patterns_on_grid(model: nn.Module, extent: tuple[float, float, float, float], resolution: int = 200) -> int:
    """Distinct activation patterns (= linear regions seen) on a ``resolution``^2 grid over ``extent``."""
    return count_patterns(activation_patterns(model, _grid_points(extent, resolution)[2]))


def regions_along_segment(model: nn.Module, start: Sequence[float], end: Sequence[float], points: int = 4001) -> int:
    """Linear regions crossed on the segment start -> end (input coordinates), sampled at ``points``
    evenly spaced inputs: 1 + the number of consecutive samples whose activation patterns differ."""
    t = torch.linspace(0.0, 1.0, points)[:, None]
    a, b = torch.tensor(start, dtype=torch.float32), torch.tensor(end, dtype=torch.float32)
    patterns = activation_patterns(model, a + t * (b - a))
    return 1 + int(np.any(patterns[1:] != patterns[:-1], axis=1).sum())


def geometry_row(model: nn.Module, extent: tuple[float, float, float, float], resolution: int = 200) -> dict[str, int]:
    """relu_count, total_units, regions_along_line (the extent's diagonal, lower left to upper right)
    and patterns_on_grid (``resolution``^2 grid over ``extent``)."""
    return {"relu_count": relu_count(model),
            "total_units": total_sites(model),
            "regions_along_line": regions_along_segment(model, (extent[0], extent[2]), (extent[1], extent[3])),
            "patterns_on_grid": patterns_on_grid(model, extent, resolution)}


# ------------------------------------------------------------------------------------ B.1 picture

@dataclass(frozen=True)
class Piecewise1D:
    """A 1D -> 1D ReLU network sampled on a grid (the paper's Appendix B.1 picture).

    x: (P,) inputs; units: (P, U) each hidden unit's contribution v_u * act_u(x) to the output;
    output: (P,) the network; breakpoints: x where the output's slope changes, ascending;
    pieces: len(breakpoints) + 1, its number of linear pieces on the x range; linearized: unit indices.
    """

    x: np.ndarray
    units: np.ndarray
    output: np.ndarray
    breakpoints: np.ndarray
    pieces: int
    linearized: tuple[int, ...]


B1_WEIGHTS = {"w": (1.0, 1.0), "b": (1.0, -1.0), "v": (1.0, -2.0), "c": 0.0}


def one_dimensional_example(linearized: Sequence[int] = (), *, x_range: tuple[float, float] = (-3.0, 3.0),
                            points: int = 601, weights: dict[str, Any] | None = None) -> Piecewise1D:
    """The width-2, one-hidden-layer network y = c + sum_u v_u * act_u(w_u x + b_u) on [x_min, x_max].

    Defaults (``B1_WEIGHTS``): kinks at x = -1 and x = 1 and output weights 1 and -2, so with both ReLUs
    the output has 3 pieces (flat, rising, falling); linearizing either unit leaves 2 pieces (its kink
    disappears), both leaves 1. Built as an MLP with :class:`~fairlin_core.models.LinearizableReLU`
    sites, so the masks are the same machinery as everywhere else. weights: overrides of ``B1_WEIGHTS``
    (w, b: the hidden units' weights and biases; v, c: the output weights and bias).
    """
    weights = {**B1_WEIGHTS, **(weights or {})}
    width = len(weights["w"])
    bad = [u for u in linearized if not 0 <= u < width]
    if bad:
        raise FairLinError(f"unit index {bad[0]} out of range; the network has units 0..{width - 1}")
    model = build_model(resolve_spec("mlp", 1, (1,), depth=1, width=width))
    hidden, site, head = model.layers[1], model.layers[2], model.layers[3]
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor(weights["w"], dtype=torch.float32)[:, None])
        hidden.bias.copy_(torch.tensor(weights["b"], dtype=torch.float32))
        head.weight.copy_(torch.tensor(weights["v"], dtype=torch.float32)[None, :])
        head.bias.fill_(float(weights["c"]))
        site.alpha.fill_(1.0)
        site.alpha[list(linearized)] = 0.0
    x = torch.linspace(x_range[0], x_range[1], points)[:, None]
    with torch.no_grad():
        acts = site(hidden(x))
        output = model(x)[:, 0]
    units = (acts * head.weight[0]).detach().numpy()
    kinks = [-b / w for w, b, on in zip(weights["w"], weights["b"], site.alpha.tolist()) if on > 0.5 and w != 0]
    breakpoints = np.array(sorted(k for k in set(kinks) if x_range[0] < k < x_range[1]
                                  and _slope_changes(model, k)), dtype=float)
    return Piecewise1D(x[:, 0].numpy(), units, output.numpy(), breakpoints, len(breakpoints) + 1,
                       tuple(sorted(linearized)))


@torch.no_grad()
def _slope_changes(model: nn.Module, x0: float, eps: float = 1e-3) -> bool:
    """Whether the 1D model's slope differs just left and right of ``x0``."""
    x = torch.tensor([[x0 - 2 * eps], [x0 - eps], [x0 + eps], [x0 + 2 * eps]])
    y = model(x)[:, 0].double()
    return abs(float((y[3] - y[2]) - (y[1] - y[0]))) / eps > 1e-3
