"""2D teaching experiments: partial linearization bends the decision boundary away from the minority.

The paper's Figure 2 as a function call. On a ``toy2d`` shape (class 0 = majority, class 1 = minority)
a ReLU MLP and the same MLP with a share of its hidden units linearized are trained per seed, then
compared on per-group accuracy, the decision boundary, expressiveness (linear regions) and distance
to the boundary. Two ways to linearize:

- ``scratch`` (the paper's comparison): the masks are fixed before training and both models train
  from the same initial weights with full-batch Adam and a cosine schedule. Which units go:
  ``random`` entries over the whole network, ``neurons`` (the same share in every layer), or ``last``
  (the last layers first).
- ``snl``: the trained ReLU model is linearized by SNL (learned masks) and KD-finetuned.

Also here: the Appendix B.1 example, a width-2 one-hidden-layer network on 1D input that has at most
3 linear pieces with both ReLUs and 2 with one linearized (:func:`one_dimensional_example`), and
:class:`ToyJob`, a thread-safe holder running :func:`run_toy` in a child process for a UI (its messages are
JSON frames with safetensors for arrays and weights; nothing is unpickled).
Coordinates are the raw ``toy2d`` units (the plane is about [-1, 1]^2); accuracies are fractions.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import safetensors.numpy
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes
import torch
import torch.nn.functional as F
from torch import nn

from .data import DatasetBundle, load_dataset
from .data.toy2d import SHAPES
from .errors import FairLinError
from .finetune import FinetuneConfig
from .linearize import LinearizeOptions, SNLConfig, linearize
from .metrics import boundary_distances, boundary_summary, evaluate_split, predict_logits
from .models import (RELU_THRESHOLD, ModelSpec, activation_sites, build_model, relu_count, resolve_spec, set_masks,
                     total_sites)
from .runtime import CancelFlag, Progress, ProgressFn, check_cancel, report

MODES = ("scratch", "snl")
WHICH = ("random", "neurons", "last")
MODEL_KINDS = ("relu", "linearized")
SPLITS = ("train", "test")
GRID_PAD = 0.1


@dataclass(frozen=True)
class ToyConfig:
    """One toy experiment.

    shape, n, noise, minority_ratio: the ``toy2d`` dataset (None = the shape's default).
    depth, width: the MLP (hidden layers x units). steps, lr: full-batch Adam steps with cosine decay.
    linearized: share of hidden units turned into the identity, in [0, 1].
    which: placement for ``scratch`` (random | neurons | last); mode: scratch | snl.
    snl_finetune_epochs, snl_finetune_lr: the KD finetune after SNL (SGD, batch 64).
    """

    shape: str = "paper"
    n: int = 2000
    noise: float | None = None
    minority_ratio: float | None = None
    depth: int = 2
    width: int = 16
    steps: int = 2000
    lr: float = 1e-2
    linearized: float = 0.5
    which: str = "random"
    mode: str = "scratch"
    snl_finetune_epochs: int = 30
    snl_finetune_lr: float = 1e-2

    def validate(self) -> None:
        """Raise :class:`FairLinError` (or its DatasetError / ModelError) saying which field is wrong and
        what is expected."""
        if self.shape not in SHAPES:
            raise FairLinError(f"shape must be one of {', '.join(SHAPES)}; got {self.shape!r}")
        if not _is_int(self.steps) or self.steps < 1:
            raise FairLinError(f"steps must be a positive integer, got {self.steps!r}")
        if not self.lr > 0:
            raise FairLinError(f"lr must be > 0, got {self.lr!r}")
        if not isinstance(self.linearized, (int, float)) or not 0.0 <= self.linearized <= 1.0:
            raise FairLinError(f"linearized is the share of hidden units made linear; expected a number in "
                               f"[0, 1], got {self.linearized!r}")
        if self.which not in WHICH:
            raise FairLinError(f"which must be one of {', '.join(WHICH)}; got {self.which!r}")
        if self.mode not in MODES:
            raise FairLinError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.mode == "snl":
            if self.which != "random":
                raise FairLinError(f"SNL learns which ReLUs to keep, so which={self.which!r} does not apply; "
                                   f"expected which='random' (the default) with mode 'snl'")
            if self.linearized >= 1.0:
                raise FairLinError("SNL keeps at least one ReLU; expected linearized < 1 with mode 'snl' "
                                   "(use mode 'scratch' for a fully linear network)")
        if not _is_int(self.snl_finetune_epochs) or self.snl_finetune_epochs < 0:
            raise FairLinError(f"snl_finetune_epochs must be an integer >= 0, got {self.snl_finetune_epochs!r}")
        self.model_spec()  # depth and width
        load_toy(self, seed=0)  # the data options, checked by the toy2d loader itself (about a millisecond)

    def model_spec(self) -> ModelSpec:
        return resolve_spec("mlp", 2, (2,), depth=self.depth, width=self.width)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def load_toy(config: ToyConfig, seed: int) -> DatasetBundle:
    """The ``toy2d`` bundle of ``config`` drawn with ``seed`` (train/val/test, groups = classes)."""
    return load_dataset("toy2d", seed=seed, shape=config.shape, n=config.n, noise=config.noise,
                        minority_ratio=config.minority_ratio)


# ----------------------------------------------------------------------------------------- masks

def linearization_masks(model: nn.Module, fraction: float, which: str = "random",
                        generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """Binary masks by site name (1 = ReLU, 0 = identity) with ``round(fraction * total)`` entries at 0.

    random: entries uniformly over all sites; neurons: the same share in every site (largest
    remainders get the extra units), units chosen at random within a site; last: sites from the last
    one backwards, each emptied (at random within the site) before the previous one is touched.
    """
    if which not in WHICH:
        raise FairLinError(f"which must be one of {', '.join(WHICH)}; got {which!r}")
    sites = list(activation_sites(model))
    sizes = [site.alpha.numel() for _, site in sites]
    total = sum(sizes)
    off = round(fraction * total)
    generator = generator or torch.Generator().manual_seed(0)
    if which == "random":
        flat = torch.ones(total)
        flat[torch.randperm(total, generator=generator)[:off]] = 0.0
        chunks = list(flat.split(sizes))
    else:
        if which == "neurons":
            exact = np.array(sizes, dtype=float) * off / total
            quota = np.floor(exact).astype(int)
            extra = np.argsort(-(exact - quota), kind="stable")[:off - quota.sum()]
            quota[extra] += 1
        else:
            quota, left = np.zeros(len(sizes), dtype=int), off
            for i in reversed(range(len(sizes))):
                quota[i] = min(sizes[i], left)
                left -= quota[i]
        chunks = []
        for size, k in zip(sizes, quota):
            mask = torch.ones(size)
            mask[torch.randperm(size, generator=generator)[:int(k)]] = 0.0
            chunks.append(mask)
    return {name: chunk.view_as(site.alpha) for (name, site), chunk in zip(sites, chunks)}


# -------------------------------------------------------------------------------------- training

def train_toy_model(bundle: DatasetBundle, spec: ModelSpec, *, masks: dict[str, torch.Tensor] | None = None,
                    steps: int = 2000, lr: float = 1e-2, seed: int = 0, device: torch.device | None = None,
                    progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
                    report_every: int = 20, preview_every: int = 0,
                    extent: tuple[float, float, float, float] | None = None,
                    preview_resolution: int = 60) -> tuple[nn.Module, pd.DataFrame]:
    """Train a fresh MLP on the train split with ``masks`` fixed (None = every ReLU on).

    The initial weights depend only on ``seed``, so models differing only in masks start equal.
    Full batch, Adam at ``lr`` with cosine decay to 0 over ``steps``. Progress every ``report_every``
    steps with metrics step and loss; every ``preview_every`` steps (0 = never) also ``boundary``, a
    :class:`BoundaryGrid` of ``preview_resolution`` x ``preview_resolution`` over ``extent``.
    Returns (model in eval mode on CPU, history with columns step, stage ("train"), loss (mean train
    cross-entropy, nats)).
    """
    device = device or torch.device("cpu")
    torch.manual_seed(seed)
    model = build_model(spec)
    if masks is not None:
        set_masks(model, masks)
    model.to(device).train()
    x, y = bundle.splits["train"].x.to(device), bundle.splits["train"].y.to(device)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr, fused=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    losses = torch.empty(steps)
    extent = extent or data_extent(bundle)
    for step in range(steps):
        check_cancel(cancel)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses[step] = loss.detach()
        done = step + 1
        if progress is not None and (done % report_every == 0 or done == steps):
            metrics: dict[str, Any] = {"step": done, "loss": float(losses[step])}
            if preview_every and (done % preview_every == 0 or done == steps):
                metrics["boundary"] = decision_grid(model, extent, preview_resolution)
            report(progress, done / steps, "train", f"step {done}/{steps}", **metrics)
    model.eval().cpu()
    return model, pd.DataFrame({"step": np.arange(1, steps + 1), "stage": "train", "loss": losses.numpy()})


def snl_linearize(model: nn.Module, spec: ModelSpec, bundle: DatasetBundle, config: ToyConfig, *, seed: int = 0,
                  device: torch.device | None = None, progress: ProgressFn | None = None,
                  cancel: CancelFlag | None = None) -> tuple[nn.Module, pd.DataFrame]:
    """SNL on a trained ReLU MLP down to ``1 - config.linearized`` of its units, then KD finetune.

    Returns (linearized model in eval mode on CPU, history with columns step (SNL epochs, then
    finetune epochs counted on), stage (snl | finetune) and loss (mean per-sample training loss, nats)).
    """
    kept = relu_count(model) - round(config.linearized * relu_count(model))
    options = LinearizeOptions(snl=SNLConfig(), finetune=FinetuneConfig(epochs=config.snl_finetune_epochs,
                                                                         lr=config.snl_finetune_lr))
    result = linearize(model, spec, bundle, "snl", kept, options=options, seed=seed,
                       device=device or torch.device("cpu"), progress=progress, cancel=cancel)
    history = result.history.dropna(subset=["loss"])
    return result.model.eval().cpu(), pd.DataFrame({"step": np.arange(1, len(history) + 1),
                                                    "stage": history["stage"].to_numpy(),
                                                    "loss": history["loss"].to_numpy(dtype=float)})


# -------------------------------------------------------------------------------------- geometry

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


# ------------------------------------------------------------------------------------ evaluation

def accuracy_rows(model: nn.Module, bundle: DatasetBundle) -> list[dict[str, Any]]:
    """Rows split, group (overall + every group name), n, accuracy (fraction) on train and test."""
    rows = []
    for split in SPLITS:
        overall, table = evaluate_split(model, bundle.splits[split], bundle.group_names, torch.device("cpu"))
        rows.append({"split": split, "group": "overall", "n": len(bundle.splits[split]), "accuracy": overall})
        rows += [{"split": split, "group": r.group, "n": int(r.n), "accuracy": float(r.accuracy)}
                 for r in table.itertuples()]
    return rows


def points_table(bundle: DatasetBundle, split: str = "test", model: nn.Module | None = None) -> pd.DataFrame:
    """One row per point of ``split``: x, y (toy units), label, class (name); with a model also
    prediction and correct (bool), else those two columns are absent."""
    data = bundle.splits[split]
    table = pd.DataFrame({"x": data.x[:, 0].numpy(), "y": data.x[:, 1].numpy(), "label": data.y.numpy(),
                          "class": [bundle.class_names[i] for i in data.y.tolist()]})
    if model is not None:
        table["prediction"] = predict_logits(model, data.x, device=torch.device("cpu")).argmax(1).numpy()
        table["correct"] = table["prediction"] == table["label"]
    return table


def margin_rows(model: nn.Module, bundle: DatasetBundle) -> list[dict[str, Any]]:
    """Per group of the test split: n, input_margin_mean (input-space distance to the boundary, toy
    units) and softmax_margin_mean (p_top1 - p_top2), from :func:`boundary_distances`."""
    samples = boundary_distances(model, bundle.splits["test"], bundle.group_names, device=torch.device("cpu"))
    summary = boundary_summary(samples, bundle.group_names)
    return summary[["group", "n", "input_margin_mean", "softmax_margin_mean"]].to_dict(orient="records")


# ------------------------------------------------------------------------------------ multi-seed

@dataclass
class ToyResult:
    """Everything a toy experiment produced, as tidy tables (one row per seed x model [x split x group]).

    accuracy: seed, model (relu | linearized), split (train | test), group (overall | majority |
    minority), n, accuracy (fraction). geometry: seed, model, relu_count, total_units,
    regions_along_line, patterns_on_grid, seconds (training time of that model). margins: seed, model,
    group, n, input_margin_mean, softmax_margin_mean (test split). history: seed, model, stage, step, loss.
    bundles / models: the data and trained models (CPU, eval mode) by seed / (seed, model).
    """

    config: ToyConfig
    seeds: list[int]
    accuracy: pd.DataFrame
    geometry: pd.DataFrame
    margins: pd.DataFrame
    history: pd.DataFrame
    bundles: dict[int, DatasetBundle] = field(repr=False)
    models: dict[tuple[int, str], nn.Module] = field(repr=False)

    def summary(self, split: str = "test") -> pd.DataFrame:
        """Mean and sd over seeds of the accuracy: model, group, mean, sd (ddof 1; NaN for one seed), seeds."""
        table = self.accuracy[self.accuracy["split"] == split]
        out = table.groupby(["model", "group"], sort=False)["accuracy"].agg(mean="mean", sd="std", seeds="count")
        return out.reset_index()

    def geometry_summary(self) -> pd.DataFrame:
        """Mean over seeds of every geometry column, one row per model (index model)."""
        return self.geometry.drop(columns="seed").groupby("model", sort=False).mean()

    def margin_summary(self) -> pd.DataFrame:
        """Mean over seeds of the per-group margins: model, group, input_margin_mean, softmax_margin_mean."""
        columns = ["input_margin_mean", "softmax_margin_mean"]
        return self.margins.groupby(["model", "group"], sort=False)[columns].mean().reset_index()

    def seconds_per_model(self) -> float:
        """Mean training seconds of one model (ReLU and linearized alike)."""
        return float(self.geometry["seconds"].mean())

    def points(self, seed: int, model: str, split: str = "test") -> pd.DataFrame:
        """:func:`points_table` of one trained model on its seed's data."""
        return points_table(self.bundles[seed], split, self.models[(seed, model)])

    def boundary(self, seed: int, model: str, resolution: int = 200) -> BoundaryGrid:
        """The decision grid of one trained model over its data's extent."""
        return decision_grid(self.models[(seed, model)], data_extent(self.bundles[seed]), resolution)


def _scaled(progress: ProgressFn | None, start: float, span: float, seed: int, model: str) -> ProgressFn | None:
    """Forward one model's reports as the [start, start + span] part of the run, tagged with seed and model."""
    if progress is None:
        return None

    def forward(update: Progress) -> None:
        progress(Progress(start + span * update.fraction, update.stage, f"seed {seed}, {model}: {update.message}",
                          {"seed": seed, "model": model, **update.metrics}))
    return forward


def run_toy(config: ToyConfig, seeds: Sequence[int] = range(5), *, device: torch.device | None = None,
            progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
            preview_every: int = 0) -> ToyResult:
    """Train the ReLU and the linearized model for every seed (the seed draws the data, the initial
    weights and the random placement) and measure them.

    progress: fractions over the whole run; metrics carry seed and model (relu | linearized) besides
    the training metrics (step, loss, and ``boundary`` every ``preview_every`` steps, see
    :func:`train_toy_model`). cancel: raises :class:`~fairlin_core.runtime.Cancelled` between steps.
    device: defaults to the CPU (full-batch steps on a tiny MLP are fastest there).
    """
    config.validate()
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise FairLinError("no seed given; expected at least one seed")
    spec = config.model_spec()
    bundles = {seed: load_toy(config, seed) for seed in seeds}  # bad data options fail before any training
    rows: dict[str, list[dict[str, Any]]] = {"accuracy": [], "geometry": [], "margins": []}
    histories: list[pd.DataFrame] = []
    models: dict[tuple[int, str], nn.Module] = {}
    share = 1.0 / (len(seeds) * len(MODEL_KINDS))
    for i, seed in enumerate(seeds):
        bundle = bundles[seed]
        extent = data_extent(bundle)
        for j, kind in enumerate(MODEL_KINDS):
            scaled = _scaled(progress, (2 * i + j) * share, share, seed=seed, model=kind)
            start = time.perf_counter()
            if kind == "linearized" and config.mode == "snl":
                model, history = snl_linearize(models[(seed, "relu")], spec, bundle, config, seed=seed,
                                               device=device, progress=scaled, cancel=cancel)
            else:
                masks = None
                if kind == "linearized":
                    masks = linearization_masks(build_model(spec), config.linearized, config.which,
                                                torch.Generator().manual_seed(seed))
                model, history = train_toy_model(bundle, spec, masks=masks, steps=config.steps, lr=config.lr,
                                                 seed=seed, device=device, progress=scaled, cancel=cancel,
                                                 preview_every=preview_every, extent=extent)
            seconds = time.perf_counter() - start
            models[(seed, kind)] = model
            key = {"seed": seed, "model": kind}
            rows["accuracy"] += [{**key, **row} for row in accuracy_rows(model, bundle)]
            rows["geometry"].append({**key, **geometry_row(model, extent), "seconds": seconds})
            rows["margins"] += [{**key, **row} for row in margin_rows(model, bundle)]
            histories.append(history.assign(**key)[["seed", "model", "stage", "step", "loss"]])
    report(progress, 1.0, "done", f"{len(seeds)} seed(s) done")
    tables = {name: pd.DataFrame(value) for name, value in rows.items()}
    return ToyResult(config, seeds, tables["accuracy"], tables["geometry"], tables["margins"],
                     pd.concat(histories, ignore_index=True), bundles, models)


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


# ---------------------------------------------------------------------------------- background job

_spare_lock = threading.Lock()
_spare: subprocess.Popen | None = None


def _spawn_worker(warm_up: bool = False) -> subprocess.Popen:
    """A child Python that imports the engine (and with ``warm_up`` runs a tiny job to pay torch's
    one-off initialisation, about 2 s), then waits on stdin for one job (see :func:`_job_child`)."""
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    code = f"from fairlin_core.toy import _job_child; _job_child(warm_up={warm_up})"
    return subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)


def prewarm() -> None:
    """Start a worker process now, unless one is waiting already, so the next :class:`ToyJob` starts
    without the torch import and first-run initialisation (4-9 s on 2 busy cores). An unused worker
    exits when this process does."""
    global _spare
    with _spare_lock:
        if _spare is None or _spare.poll() is not None:
            _spare = _spawn_worker(warm_up=True)


def _take_worker() -> subprocess.Popen:
    global _spare
    with _spare_lock:
        worker, _spare = _spare, None
    return worker if worker is not None and worker.poll() is None else _spawn_worker()


class ToyJob:
    """Runs :func:`run_toy` in a child Python process, with a daemon thread here receiving its reports.

    A process, not a thread, trains: tiny torch ops release and retake the GIL so often that a busy UI
    thread slows an in-process trainer several fold (measured 7x). The child (``python -c``; importing
    torch and the engine takes 2-6 s, saved by :func:`prewarm`) trains single-threaded. Both ways the
    messages are length-prefixed JSON frames (:func:`_write_frame`): the job (config fields, seeds,
    preview_every) on the child's stdin; progress reports with boundary previews, then one outcome
    (result or error) on its stdout. Arrays and trained weights travel as base64 safetensors, tables as
    columns, and the data are reloaded here from the config (checked against the child's digest);
    nothing is unpickled. :meth:`cancel` terminates the child (nothing half-done is kept); a child
    whose parent is gone stops at its next report. Every method is thread-safe and never blocks on
    training; the UI keeps one in its session state, polls :meth:`snapshot` and calls :meth:`cancel`.
    Nothing here touches a UI framework.
    """

    def __init__(self, config: ToyConfig, seeds: Sequence[int], preview_every: int = 100) -> None:
        config.validate()
        self.config, self.seeds, self.preview_every = config, [int(s) for s in seeds], preview_every
        self._lock = threading.Lock()
        self._state: dict[str, Any] = {"fraction": 0.0, "message": "starting (importing torch)", "loss": [],
                                       "previews": {}, "result": None, "error": None, "cancelled": False,
                                       "running": True}
        self._process: subprocess.Popen | None = None
        self._cancel_requested = False
        self._thread = threading.Thread(target=self._receive, name="fairlin-toy-receiver", daemon=True)

    def start(self) -> "ToyJob":
        """Hand the job to a worker process (the prewarmed one if any, see :func:`prewarm`)."""
        with self._lock:
            if self._cancel_requested:
                self._state.update(running=False, cancelled=True, message="stopped")
                return self
            self._process = _take_worker()
            _write_frame(self._process.stdin, {"config": asdict(self.config), "seeds": self.seeds,
                                               "preview_every": self.preview_every})
            self._process.stdin.close()
        self._thread.start()
        return self

    def cancel(self) -> None:
        """Stop the run (before or after :meth:`start`); it ends with ``cancelled`` True and no result."""
        with self._lock:
            self._cancel_requested = True
            if self._process is not None:
                self._process.terminate()  # a no-op once the child has been reaped

    def join(self, timeout: float | None = None) -> None:
        """Wait until the job ended and its outcome is in :meth:`snapshot`."""
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        with self._lock:
            return bool(self._state["running"])

    def snapshot(self) -> dict[str, Any]:
        """fraction, message, running, cancelled, error (message or None), result (:class:`ToyResult` or
        None), loss (DataFrame seed, model, step, loss so far), previews ({model: (seed, BoundaryGrid)})."""
        with self._lock:
            state = dict(self._state)
            state["loss"] = pd.DataFrame(list(state["loss"]), columns=["seed", "model", "step", "loss"])
            state["previews"] = dict(state["previews"])
        return state

    def _on_progress(self, update: Progress) -> None:
        metrics = update.metrics
        with self._lock:
            self._state["fraction"] = update.fraction
            self._state["message"] = update.message
            if "loss" in metrics and "step" in metrics:
                self._state["loss"].append((metrics["seed"], metrics["model"], metrics["step"], metrics["loss"]))
            if "boundary" in metrics:
                self._state["previews"][metrics["model"]] = (metrics["seed"], metrics["boundary"])

    def _receive(self) -> None:
        outcome: dict[str, Any] = {}
        with self._process.stdout as stream:
            while not outcome:
                try:
                    message = _read_frame(stream)
                    if message is None:  # end of stream or a truncated frame: the child is gone
                        break
                    kind, payload = message
                    if kind == "progress":
                        self._on_progress(_decode_progress(payload))
                    elif kind == "result":
                        outcome["result"] = _decode_result(payload)
                    else:
                        outcome["error"] = str(payload)
                except Exception as error:  # noqa: BLE001 - a malformed message ends the job with a clear error
                    outcome = {"error": f"unreadable message from the training process: {error!r}"}
        code = self._process.wait()
        with self._lock:
            if not outcome:
                outcome = ({"cancelled": True} if self._cancel_requested else
                           {"error": f"the training process ended unexpectedly (exit code {code}; see its log)"})
            self._state.update(outcome, running=False, message="done" if "result" in outcome else "stopped")


def _job_child(warm_up: bool = False) -> None:
    """Entry of :class:`ToyJob`'s child: read the job from stdin, train, write messages to stdout.

    The original stdout carries the messages and fd 1 is pointed at stderr, so stray prints cannot
    corrupt the stream. When the parent is gone the next message fails and the child exits.
    """
    channel = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    torch.set_num_threads(1)  # a tiny full-batch MLP is fastest single-threaded, and the UI keeps a core
    if warm_up:
        run_toy(ToyConfig(n=100, steps=3), [0])
    job = _read_frame(sys.stdin.buffer)
    if job is None:  # a prewarmed worker whose parent ended without giving it a job
        return

    def send(kind: str, payload: Any) -> None:
        _write_frame(channel, [kind, payload])
    try:
        try:
            result = run_toy(ToyConfig(**job["config"]), job["seeds"], preview_every=job["preview_every"],
                             progress=lambda update: send("progress", _encode_progress(update)))
            outcome = ("result", _encode_result(result))
        except FairLinError as error:
            outcome = ("error", str(error))
        except BrokenPipeError:
            raise
        except Exception as error:  # noqa: BLE001 - every failure becomes a message for the UI, not a dead job
            outcome = ("error", f"training failed: {error!r}")
        send(*outcome)
    except BrokenPipeError:  # the parent is gone: nobody is left to report to
        os._exit(1)


# ------------------------------------------------------------------------------- child messages
# A frame is a 4-byte big-endian length and that many bytes of UTF-8 JSON. Arrays (boundary grids)
# and model weights are base64 safetensors inside the JSON; tables are columns with their dtypes.

def _write_frame(stream: Any, message: Any) -> None:
    data = json.dumps(message, default=_plain).encode("utf-8")
    stream.write(len(data).to_bytes(4, "big") + data)
    stream.flush()


def _read_frame(stream: Any) -> Any:
    """The next message on ``stream``, or None at its end (a truncated frame counts as the end)."""
    head = stream.read(4)
    if len(head) < 4:
        return None
    size = int.from_bytes(head, "big")
    data = stream.read(size)
    return json.loads(data.decode("utf-8")) if len(data) == size else None


def _plain(value: Any) -> Any:
    """JSON fallback for numpy scalars (e.g. a metric computed with numpy)."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode_grid(grid: BoundaryGrid) -> str:
    # safetensors stores an array's memory as is, so strided views are made contiguous first
    return _b64(safetensors.numpy.save({name: np.ascontiguousarray(array) for name, array in vars(grid).items()}))


def _encode_progress(update: Progress) -> dict[str, Any]:
    """A report as JSON; the ``boundary`` metric (a :class:`BoundaryGrid`) as safetensors."""
    metrics = {key: _encode_grid(value) if key == "boundary" else value for key, value in update.metrics.items()}
    return {"fraction": update.fraction, "stage": update.stage, "message": update.message, "metrics": metrics}


def _decode_progress(data: dict[str, Any]) -> Progress:
    metrics = {key: BoundaryGrid(**safetensors.numpy.load(base64.b64decode(value))) if key == "boundary" else value
               for key, value in data["metrics"].items()}
    return Progress(data["fraction"], data["stage"], data["message"], metrics)


def _encode_table(table: pd.DataFrame) -> dict[str, Any]:
    return {"columns": [str(c) for c in table.columns], "dtypes": [str(t) for t in table.dtypes],
            "data": [table[c].tolist() for c in table.columns]}


def _decode_table(data: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame({column: pd.Series(values, dtype=dtype)
                         for column, dtype, values in zip(data["columns"], data["dtypes"], data["data"])})


def _bundle_digest(bundle: DatasetBundle) -> str:
    """SHA-256 over every split's x, y and group, to check that data reloaded elsewhere are the same."""
    digest = hashlib.sha256()
    for name, split in bundle.splits.items():
        digest.update(name.encode())
        for tensor in (split.x, split.y, split.group):
            digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def _encode_result(result: ToyResult) -> dict[str, Any]:
    """A :class:`ToyResult` as JSON: config, seeds, tables, each model's full state dict (masks
    included) as safetensors, and a digest of each seed's data (the data themselves are reloaded)."""
    return {"config": asdict(result.config), "seeds": result.seeds,
            "tables": {name: _encode_table(getattr(result, name))
                       for name in ("accuracy", "geometry", "margins", "history")},
            "models": [[seed, kind, _b64(save_safetensors_bytes(model.state_dict()))]
                       for (seed, kind), model in result.models.items()],
            "digests": {str(seed): _bundle_digest(bundle) for seed, bundle in result.bundles.items()}}


def _decode_result(data: dict[str, Any]) -> ToyResult:
    """Rebuild :func:`_encode_result`'s message: the data reloaded with :func:`load_toy` (and checked),
    the models freshly built from the config's spec with the sent weights loaded."""
    config = ToyConfig(**data["config"])
    seeds = [int(seed) for seed in data["seeds"]]
    bundles = {seed: load_toy(config, seed) for seed in seeds}
    for seed, bundle in bundles.items():
        if _bundle_digest(bundle) != data["digests"][str(seed)]:
            raise FairLinError(f"the reloaded data of seed {seed} differ from the training process's")
    models = {}
    with torch.random.fork_rng(devices=[]):  # building a model draws initial weights; leave the caller's RNG alone
        for seed, kind, weights in data["models"]:
            model = build_model(config.model_spec())
            model.load_state_dict(load_safetensors_bytes(base64.b64decode(weights)))
            models[(int(seed), kind)] = model.eval()
    tables = {name: _decode_table(table) for name, table in data["tables"].items()}
    return ToyResult(config, seeds, tables["accuracy"], tables["geometry"], tables["margins"], tables["history"],
                     bundles, models)
