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

Coordinates are the raw ``toy2d`` units (the plane is about [-1, 1]^2); accuracies are fractions.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data import DatasetBundle, load_dataset
from ..data.toy2d import SHAPES
from ..errors import FairLinError, brief, check_seed
from ..finetune import FinetuneConfig
from ..limits import FRACTION, POSITIVE, PROPER_FRACTION, check_count, check_many, check_real
from ..linearizers import LinearizeOptions, SNLConfig, linearize
from ..metrics import boundary_distances, boundary_summary, evaluate_split, predict_logits
from ..models import ModelSpec, activation_sites, build_model, relu_count, resolve_spec, set_masks
from ..runtime import CancelFlag, ProgressFn, check_cancel, report, scaled_progress
from .geometry import BoundaryGrid, data_extent, decision_grid, geometry_row

MODES = ("scratch", "snl")
WHICH = ("random", "neurons", "last")
MODEL_KINDS = ("relu", "linearized")
SPLITS = ("train", "test")


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
            raise FairLinError(f"shape must be one of {', '.join(SHAPES)}; got {brief(self.shape)}")
        check_count(self.steps, "steps", "steps")
        check_real(self.lr, "lr", POSITIVE)
        check_real(self.linearized, "linearized (the share of hidden units made linear)", FRACTION)
        if self.which not in WHICH:
            raise FairLinError(f"which must be one of {', '.join(WHICH)}; got {brief(self.which)}")
        if self.mode not in MODES:
            raise FairLinError(f"mode must be one of {', '.join(MODES)}; got {brief(self.mode)}")
        if self.mode == "snl":
            if self.which != "random":
                raise FairLinError(f"SNL learns which ReLUs to keep, so which={brief(self.which)} does not apply; "
                                   f"expected which='random' (the default) with mode 'snl'")
            if self.linearized >= 1.0:
                raise FairLinError("SNL keeps at least one ReLU; expected linearized < 1 with mode 'snl' "
                                   "(use mode 'scratch' for a fully linear network)")
        check_count(self.snl_finetune_epochs, "snl_finetune_epochs", "epochs", minimum=0)
        check_real(self.snl_finetune_lr, "snl_finetune_lr", POSITIVE)
        self.model_spec()  # depth and width
        load_toy(self, seed=0)  # the data options, checked by the toy2d loader itself (about a millisecond)

    def model_spec(self) -> ModelSpec:
        return resolve_spec("mlp", 2, (2,), depth=self.depth, width=self.width)


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
        raise FairLinError(f"which must be one of {', '.join(WHICH)}; got {brief(which)}")
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


def _train_kind(config: ToyConfig, spec: ModelSpec, bundle: DatasetBundle, seed: int, share: float,
                relu_model: nn.Module | None, **train: Any) -> tuple[nn.Module, pd.DataFrame]:
    """The ReLU model (``share`` 0) or one with ``share`` of its units linearized: fixed masks trained from
    the same initial weights (``scratch``), or SNL + KD finetune of the trained ``relu_model`` (``snl``)."""
    if share > 0 and config.mode == "snl":
        train = {k: v for k, v in train.items() if k in ("device", "progress", "cancel")}
        return snl_linearize(relu_model, spec, bundle, replace(config, linearized=share), seed=seed, **train)
    masks = None
    if share > 0:
        masks = linearization_masks(build_model(spec), share, config.which, torch.Generator().manual_seed(seed))
    return train_toy_model(bundle, spec, masks=masks, steps=config.steps, lr=config.lr, seed=seed, **train)


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
    seeds = [check_seed(s) for s in check_many(seeds, "seeds", "seeds")]
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
            scaled = scaled_progress(progress, (2 * i + j) * share, (2 * i + j + 1) * share, f"seed {seed}, {kind}: ",
                                     seed=seed, model=kind)
            start = time.perf_counter()
            model, history = _train_kind(config, spec, bundle, seed, config.linearized if kind == "linearized" else 0.0,
                                         models.get((seed, "relu")), device=device, progress=scaled, cancel=cancel,
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


@dataclass
class ToySweep:
    """Per-group accuracy as the linearized share grows: one ReLU model and one linearized model per share
    and seed (same data, initial weights and placement rule per seed as :func:`run_toy`).

    table: share (fraction of hidden units linearized; 0 = the ReLU model), seed, split (train | test),
    group (overall | majority | minority), n, accuracy (fraction).
    """

    config: ToyConfig
    seeds: list[int]
    shares: list[float]
    table: pd.DataFrame

    def summary(self, split: str = "test") -> pd.DataFrame:
        """share, group, mean, sd (ddof 1; NaN for one seed), seeds: accuracy over seeds per share and group."""
        rows = self.table[self.table["split"] == split]
        out = rows.groupby(["share", "group"], sort=True)["accuracy"].agg(mean="mean", sd="std", seeds="count")
        return out.reset_index()

    def wide(self, split: str = "test") -> pd.DataFrame:
        """Mean accuracy over seeds (fraction), one row per share (index) and one column per group: minority,
        majority, overall."""
        return self.summary(split).pivot(index="share", columns="group", values="mean")[["minority", "majority",
                                                                                         "overall"]]


def share_sweep(config: ToyConfig, shares: Sequence[float], seeds: Sequence[int] = range(3), *,
                device: torch.device | None = None, progress: ProgressFn | None = None,
                cancel: CancelFlag | None = None) -> ToySweep:
    """Train the toy at every linearized ``share`` (fractions in [0, 1); 0 is added: the ReLU model) for
    every seed; ``config.linearized`` is ignored. Cost: (len(shares) + 1) models per seed."""
    config.validate()
    shares = sorted({0.0, *(float(s) for s in check_many(shares, "shares", "budgets"))})
    seeds = [check_seed(s) for s in check_many(seeds, "seeds", "seeds")]
    bad = [s for s in shares if s not in PROPER_FRACTION]
    if bad or not seeds:
        raise FairLinError(f"expected shares in [0, 1) and at least one seed; got shares {brief(shares)} and seeds "
                           f"{brief(seeds)}")
    for share in shares:
        replace(config, linearized=share).validate()  # e.g. SNL keeps at least one ReLU
    spec = config.model_spec()
    bundles = {seed: load_toy(config, seed) for seed in seeds}
    rows: list[dict[str, Any]] = []
    total = len(seeds) * len(shares)
    for i, seed in enumerate(seeds):
        relu_model = None
        for j, share in enumerate(shares):
            step = i * len(shares) + j
            scaled = scaled_progress(progress, step / total, (step + 1) / total,
                                     f"seed {seed}, {share:.0%} linearized: ", seed=seed, share=share,
                                     model="linearized" if share else "relu")
            model, _ = _train_kind(config, spec, bundles[seed], seed, share, relu_model, device=device,
                                   progress=scaled, cancel=cancel)
            relu_model = relu_model or model
            rows += [{"share": share, "seed": seed, **row} for row in accuracy_rows(model, bundles[seed])]
    report(progress, 1.0, "done", f"{len(shares)} shares x {len(seeds)} seed(s) done")
    return ToySweep(config, seeds, shares, pd.DataFrame(rows))
