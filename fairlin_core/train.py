"""Train a base (all-ReLU) model on a dataset's train split, selecting nothing on test.

Recipes: image models use SGD (momentum 0.9, weight decay 5e-4) with a cosine schedule and light
augmentation (random shifts, plus horizontal flips for natural images); the MLP uses Adam with a
cosine schedule, full batch by default (the paper's 2D toy setting).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoints import dataset_reference, save_checkpoint
from .checkpoints.io import prepare_checkpoint_output
from .data import DatasetBundle, load_dataset
from .epoch_loop import batches_per_epoch, run_epochs
from .errors import FairLinError, brief, check_seed
from .limits import check_count
from .metrics import evaluate_model, evaluate_split
from .models import ModelSpec, build_model, relu_count, resolve_spec, state_shapes
from .runtime import CancelFlag, ProgressFn, check_cancel, default_device, report

FLIP_DATASETS = {"cifar10", "utkface"}


@dataclass(frozen=True)
class TrainConfig:
    """epochs; lr; batch_size (0 = full batch); optimizer 'sgd' or 'adam'; weight_decay;
    augment 'none', 'shift' (random translation by up to ``shift`` pixels) or 'shift_flip'."""

    epochs: int
    lr: float
    batch_size: int
    optimizer: str
    weight_decay: float
    augment: str
    shift: int = 0


def default_train_config(bundle: DatasetBundle, spec: ModelSpec, epochs: int | None = None) -> TrainConfig:
    """The documented recipe for ``spec`` on ``bundle`` (epochs overridable)."""
    if len(bundle.input_shape) == 3:
        height = bundle.input_shape[1]
        augment = "shift_flip" if bundle.name in FLIP_DATASETS else "shift"
        return TrainConfig(epochs=epochs or 30, lr=0.05, batch_size=64, optimizer="sgd", weight_decay=5e-4,
                           augment=augment, shift=max(1, height // 8))
    return TrainConfig(epochs=epochs or 2000, lr=1e-2, batch_size=0, optimizer="adam", weight_decay=0.0,
                       augment="none")


def _augment(x: torch.Tensor, config: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Random translation with zero padding (and flips) of a (N, C, H, W) batch."""
    if config.augment == "none" or x.dim() != 4:
        return x
    n, _, height, width = x.shape
    pad = config.shift
    padded = F.pad(x, (pad, pad, pad, pad))
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    out = torch.stack([padded[i, :, dy:dy + height, dx:dx + width] for i, (dy, dx) in enumerate(offsets.tolist())])
    if config.augment == "shift_flip":
        flip = torch.rand(n, generator=generator) < 0.5
        out[flip] = out[flip].flip(-1)
    return out


def _optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    raise FairLinError(f"unknown optimizer {brief(config.optimizer)}; expected sgd or adam")


def train_base(bundle: DatasetBundle, model_name: str, *, model_options: dict[str, Any] | None = None,
               config: TrainConfig | None = None, epochs: int | None = None, seed: int = 0,
               device: torch.device | None = None, progress: ProgressFn | None = None,
               cancel: CancelFlag | None = None) -> tuple[nn.Module, ModelSpec, TrainConfig, pd.DataFrame]:
    """Train a fresh model; returns (model in eval mode on CPU, spec, recipe used, per-epoch history).

    history columns: epoch, train_loss, val_accuracy, val_worst_group_accuracy, lr.
    """
    if epochs is not None:
        check_count(epochs, "epochs", "epochs")
    seed = check_seed(seed)
    bundle.require("train", "val", purpose="training (validation accuracy is recorded per epoch)")
    spec = resolve_spec(model_name, bundle.num_classes, bundle.input_shape, **(model_options or {}))
    config = config or default_train_config(bundle, spec, epochs)
    check_count(config.epochs, "epochs of the training recipe", "epochs")
    device = device or default_device()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = build_model(spec).to(device)
    optimizer = _optimizer(model, config)
    train = bundle.splits["train"]
    batch_size = config.batch_size or len(train)
    steps = config.epochs * batches_per_epoch(len(train), batch_size)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    history = []
    record_every = max(1, config.epochs // 200)  # keep at most ~200 history rows (full-batch runs are long)

    def forward(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _augment(train.x[index], config, generator).to(device)
        loss = F.cross_entropy(model(x), train.y[index].to(device))
        return loss, loss.detach().double() * len(index)

    def end_epoch(epoch: int, loss: float) -> None:
        row = {"epoch": epoch, "train_loss": loss, "lr": scheduler.get_last_lr()[0]}
        if epoch % record_every == 0 or epoch == config.epochs:
            val_acc, val_groups = evaluate_split(model, bundle.splits["val"], bundle.group_names, device)
            row.update(val_accuracy=val_acc, val_worst_group_accuracy=float(val_groups["accuracy"].min()))
            history.append(row)
        report(progress, epoch / config.epochs, "train", f"epoch {epoch}/{config.epochs}",
               **{k: v for k, v in row.items() if isinstance(v, float) and not math.isnan(v)})

    run_epochs(model, optimizer, forward, epochs=config.epochs, rows=len(train), batch_size=batch_size,
               end_epoch=end_epoch, generator=generator, scheduler=scheduler, device=device, cancel=cancel)
    model.eval().cpu()
    return model, spec, config, pd.DataFrame(history)


def train_config_dict(config: TrainConfig) -> dict[str, Any]:
    return asdict(config)


def base_sidecar_metadata(model: nn.Module, bundle: DatasetBundle, *, seed: int, config: TrainConfig,
                          history: pd.DataFrame, train_seconds: float) -> dict[str, Any]:
    """Sidecar fields of a freshly trained base model: dataset, seed, recipe, ReLU count, per-group accuracy
    on test (and on the balanced split where the dataset has one)."""
    evaluations = {name: evaluate_model(model, bundle, name) for name in ("test", "balanced") if name in bundle.splits}
    return {"kind": "base", "dataset": dataset_reference(bundle), "seed": seed, "relu_count": relu_count(model),
            "training": {**train_config_dict(config), "seconds": round(train_seconds, 2),
                         "history": history.to_dict(orient="records")},
            "evaluation": evaluations["test"], "evaluations": evaluations}


def train_base_checkpoint(dataset: str, model: str, *, out: str | Path, model_options: dict[str, Any] | None = None,
                          epochs: int | None = None, seed: int = 0, data_root: str | Path | None = None,
                          target: str | None = None, group: str | None = None,
                          dataset_options: dict[str, Any] | None = None, dataset_seed: int | None = None,
                          device: torch.device | None = None, progress: ProgressFn | None = None,
                          cancel: CancelFlag | None = None, overwrite: bool = False) -> tuple[Path, dict[str, Any]]:
    """The one way to train a base checkpoint (CLI ``train-base`` and the dashboard's train-base jobs).

    Checks ``out`` first (:func:`~fairlin_core.checkpoints.io.prepare_checkpoint_output`: writable, and no checkpoint
    there unless ``overwrite``), loads ``dataset`` (seeded by ``dataset_seed``, None = ``seed``), checks the
    model spec against it before any training, trains, builds the sidecar metadata and saves ``out`` (.safetensors + .json).
    Returns (weights path, {"checkpoint", "train_seconds", **test evaluation}). Raises Cancelled when
    ``cancel`` is set; nothing is written then.
    """
    seed = check_seed(seed)
    out = prepare_checkpoint_output(out, overwrite=overwrite)
    bundle = load_dataset(dataset, data_root=data_root, seed=seed if dataset_seed is None else dataset_seed,
                          target=target, group=group, **(dataset_options or {}))
    options = dict(model_options or {})
    bundle.require("train", "val", purpose="training (validation accuracy is recorded per epoch)")
    state_shapes(resolve_spec(model, bundle.num_classes, bundle.input_shape, **options))  # fail before training
    start = time.perf_counter()
    trained, spec, config, history = train_base(bundle, model, model_options=options, epochs=epochs, seed=seed,
                                                device=device, progress=progress, cancel=cancel)
    seconds = time.perf_counter() - start
    check_cancel(cancel)
    metadata = base_sidecar_metadata(trained, bundle, seed=seed, config=config, history=history,
                                     train_seconds=seconds)
    check_cancel(cancel)
    path = save_checkpoint(out, trained, spec, metadata)
    return path, {"checkpoint": str(path), "train_seconds": round(seconds, 2), **metadata["evaluation"]}
