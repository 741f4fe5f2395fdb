"""Masks-frozen finetuning of a linearized student by knowledge distillation from the base teacher.

SGD (lr 1e-3, momentum 0.9, weight decay 5e-4) with a cosine schedule on ``ce_weight * CE +
kd_weight * KD_T`` (T = 4), as in SNL's reference finetune. The epoch kept is chosen on the validation
split by ``config.select`` (epoch 0 = the starting point is a candidate; see :mod:`.selection`), never
on test; one finetune keeps the best state of every selection rule. The batch
objective is pluggable: the default is the mean per-sample loss; the fairness-constrained finetune
supplies its own (see :mod:`fairlin_core.finetune.fair`).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import pandas as pd
import torch
from torch import nn

from ..data import DatasetBundle
from ..epoch_loop import batches_per_epoch, run_epochs
from ..errors import FairLinError, check_seed
from ..limits import FRACTION, NON_NEGATIVE, POSITIVE, check_count, check_real
from ..metrics import evaluate_split
from ..models import activation_sites
from ..runtime import CancelFlag, DeviceRows, ProgressFn, default_device, for_training, report
from .kd import distillation_loss_per_sample, teacher_logits
from .selection import AUTO, DEFAULT_SELECT, SELECTIONS, Selector, check_selection, resolve_selection


@dataclass(frozen=True)
class FinetuneConfig:
    """epochs (0 = no finetune); SGD lr, momentum, weight_decay; batch_size; KD temperature and weights;
    select: the validation selection rule (overall, worst-group, constrained; auto = constrained when
    mitigated, else overall) and select_tolerance its worst-group tolerance for ``constrained`` (a
    fraction of accuracy, 0.02 = 2 points)."""

    epochs: int = 20
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 64
    temperature: float = 4.0
    ce_weight: float = 1.0
    kd_weight: float = 1.0
    select: str = DEFAULT_SELECT
    select_tolerance: float = 0.02

    def validate(self) -> None:
        check_count(self.epochs, "finetune epochs", "epochs", minimum=0)
        for name in ("lr", "temperature"):
            check_real(getattr(self, name), f"finetune {name}", POSITIVE)
        check_real(self.momentum, "finetune momentum", FRACTION)
        check_real(self.weight_decay, "finetune weight_decay", NON_NEGATIVE)
        if self.batch_size < 2:
            raise FairLinError(f"finetune batch_size must be >= 2, got {self.batch_size}")
        weights = [check_real(getattr(self, name), f"finetune {name}", NON_NEGATIVE)
                   for name in ("ce_weight", "kd_weight")]
        if sum(weights) == 0:
            raise FairLinError("ce_weight and kd_weight must be >= 0 and not both 0, got 0 and 0")
        check_selection(self.select, allow_auto=True)
        check_real(self.select_tolerance, "finetune select_tolerance (a fraction of accuracy)", FRACTION)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BatchObjective(Protocol):
    """Turns per-sample losses of a batch into the scalar to minimise; may keep per-epoch state."""

    def __call__(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> torch.Tensor: ...

    def end_epoch(self) -> dict[str, Any]: ...


def group_means(per_sample_loss: torch.Tensor, groups: torch.Tensor, num_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(group_loss (G,), present (G,) bool) of a batch: each group's mean per-sample loss (0 where the group is
    absent) and whether the batch holds any member; differentiable, on the loss's device."""
    sums = torch.zeros(num_groups, dtype=per_sample_loss.dtype, device=per_sample_loss.device)
    sums = sums.index_add(0, groups, per_sample_loss)
    counts = torch.bincount(groups, minlength=num_groups).to(per_sample_loss.dtype)
    return sums / counts.clamp(min=1), counts > 0


class MeanObjective:
    """Plain finetuning: the population mean of the per-sample loss."""

    def __call__(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        return per_sample_loss.mean()

    def end_epoch(self) -> dict[str, Any]:
        return {}


def validation_row(model: nn.Module, bundle: DatasetBundle, device: torch.device) -> dict[str, Any]:
    """val_accuracy, val_worst_group_accuracy and one ``val_acc:<group>`` column per group."""
    overall, table = evaluate_split(model, bundle.splits["val"], bundle.group_names, device)
    present = table[table["n"] > 0]
    row: dict[str, Any] = {"val_accuracy": overall, "val_worst_group_accuracy": float(present["accuracy"].min())}
    row.update({f"val_acc:{r.group}": float(r.accuracy) for r in table.itertuples()})
    return row


@dataclass
class FinetuneResult:
    """The model ``select`` (the rule applied, auto resolved) keeps (eval mode, on CPU), its epoch, and the
    per-epoch history; ``selected`` maps every rule to (epoch, state dict) so :meth:`model_for` gives any
    rule's model."""

    model: nn.Module
    best_epoch: int
    history: pd.DataFrame
    select: str = DEFAULT_SELECT
    selected: dict[str, tuple[int, dict[str, torch.Tensor]]] | None = None

    def model_for(self, rule: str) -> tuple[int, nn.Module]:
        """(epoch, model in eval mode on CPU) that selection ``rule`` keeps, from the same finetune."""
        rule = self.select if rule == AUTO else check_selection(rule)
        if rule == self.select or self.selected is None:
            return self.best_epoch, self.model
        epoch, state = self.selected[rule]
        model = copy.deepcopy(self.model)
        model.load_state_dict(state)
        return epoch, model.eval()


def finetune(student: nn.Module, teacher: nn.Module, bundle: DatasetBundle, config: FinetuneConfig, *,
             seed: int = 0, objective: BatchObjective | None = None, device: torch.device | None = None,
             progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
             stage: str = "finetune", precision: str = "fp32") -> FinetuneResult:
    """Finetune ``student`` (masks frozen) towards ``teacher``; ``student`` itself is not modified.

    No host synchronisation per batch: the epoch's loss is summed on the device and read once per epoch.
    precision: ``bf16`` = bf16 autocast of the forward passes on CUDA (fp32 = the default, and always on CPU).

    history columns: stage, epoch, loss, lr, val_accuracy, val_worst_group_accuracy, val_acc:<group>,
    plus whatever ``objective.end_epoch()`` reports (e.g. lambda:<group>).
    """
    config.validate()
    seed = check_seed(seed)
    bundle.require("train", "val", purpose="finetuning (the best epoch is selected on val)")
    device = device or default_device()
    select = resolve_selection(config.select, mitigated=objective is not None)
    objective = objective or MeanObjective()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = for_training(copy.deepcopy(student).to(device), device)
    for _, site in activation_sites(model):
        site.alpha.requires_grad_(False)
    train = bundle.splits["train"]
    data = DeviceRows(train.x, train.y, train.group, teacher_logits(teacher, train.x, device), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    steps = max(1, config.epochs * batches_per_epoch(len(train), config.batch_size))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def snapshot() -> dict[str, torch.Tensor]:
        return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def forward(index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, y, groups, targets = data.rows(index)
        per_sample = distillation_loss_per_sample(model(x), targets, y, config.temperature, config.ce_weight,
                                                  config.kd_weight)
        return objective(per_sample, groups), per_sample.detach().sum()

    def end_epoch(epoch: int, loss: float) -> None:
        row = {"stage": stage, "epoch": epoch, "loss": loss, "lr": scheduler.get_last_lr()[0],
               **objective.end_epoch(), **validation_row(model, bundle, device)}
        history.append(row)
        selector.offer(row, snapshot)
        report(progress, epoch / config.epochs, stage, f"epoch {epoch}/{config.epochs}",
               loss=row["loss"], val_accuracy=row["val_accuracy"])

    selector = Selector(config.select_tolerance)
    first = {"stage": stage, "epoch": 0, **validation_row(model, bundle, device)}
    history = [first]
    selector.offer(first, snapshot)
    run_epochs(model, optimizer, forward, epochs=config.epochs, rows=len(train), batch_size=config.batch_size,
               end_epoch=end_epoch, generator=generator, scheduler=scheduler, device=device, precision=precision,
               cancel=cancel)
    selected = {rule: selector.chosen(rule) for rule in SELECTIONS}
    best_epoch, best_state = selected[select]
    model.cpu().load_state_dict(best_state)
    model.eval()
    return FinetuneResult(model=model, best_epoch=best_epoch, history=pd.DataFrame(history), select=select,
                          selected=selected)

