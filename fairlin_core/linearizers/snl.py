"""Selective Network Linearization (Cho et al. 2022): learn which ReLUs to keep under a budget.

The student starts as a copy of the trained base model with every mask alpha = 1 and trainable.
Per batch it minimises ``CE(s, y) + KD_T(s, t) + lam * sum|alpha|`` with Adam (lr 1e-3 on the
weights; masks get their own ``mask_lr``, see below) and clamps the masks to [0, 1]. After each epoch
the ReLU count (alpha > 1e-2) is taken; when it did not fall below ``(1 - lam_min_progress)`` times the
best count so far and epoch >= 5, lam grows by 1.1. A budget is reached when the count drops to it;
the masks are then binarised and frozen.

One trajectory serves a whole budget sweep: the student's state is snapshotted the first time the
count falls to each requested budget (checked after every batch), so k budgets cost one SNL pass.
No host synchronisation per batch on a GPU: the count is kept on the device, and every pending budget has
a device-side copy of the state that follows the student (``torch.where``) until the count first falls to
that budget, so the snapshots stay exact while the host reads the flags only every ``read_every`` batches
(and at every epoch's end); the batch losses are summed on the device and read once per epoch. On CPU the
count is read after every batch (no sync there) and nothing else changes.

Defaults are tuned for small data; the reference values are ``mask_lr=1e-3, lam=1e-5,
lam_min_progress=0`` (lam grows only when the count stalls). The reference runs hundreds of Adam
steps per epoch on CIFAR; with ~10 batches per epoch (the embedded digits) those values move the
masks so slowly that 60 epochs remove only 10% of the ReLUs (measured), so here the masks learn at
2e-2, lam starts at 3e-3 and also grows while the count falls by less than 10% per epoch. The step
size stays near the 1e-2 threshold so masks resting at 0 do not bounce back over it.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..data import DatasetBundle
from ..finetune import distillation_loss_per_sample, teacher_logits
from ..models import RELU_THRESHOLD, ModelSpec, activation_sites, relu_count
from ..runtime import (CancelFlag, DeviceRows, ProgressFn, autocast, batch_indices, check_cancel, default_device,
                       for_training, report)
from .options import LinearizeOptions, SNLConfig
from .base import Linearizer, Placement, register_linearizer



@dataclass
class SNLSnapshot:
    """The student's full state (weights and continuous masks) when the count first reached ``budget``."""

    budget: int
    state: dict[str, torch.Tensor]
    epoch: int
    relu_count: int
    reached: bool


def snl_step(student: nn.Module, optimizer: torch.optim.Optimizer, masks: list[torch.Tensor], x: torch.Tensor,
             y: torch.Tensor, targets: torch.Tensor, lam: float, temperature: float,
             precision: str = "fp32") -> torch.Tensor:
    """One SNL update on a batch: minimise CE + KD_T + lam * sum|alpha|, then clamp the masks to [0, 1].

    x: (B, ...) inputs; y: (B,) labels; targets: (B, classes) teacher logits. Returns the task loss
    (CE + KD, without the penalty) of the batch as a detached 0-d tensor on the device (not read here).
    """
    with autocast(x.device, precision):
        task = distillation_loss_per_sample(student(x), targets, y, temperature).mean()
    loss = task + lam * sum(alpha.abs().sum() for alpha in masks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for alpha in masks:
            alpha.clamp_(0.0, 1.0)
    return task.detach()


def device_relu_count(masks: list[torch.Tensor], threshold: float) -> torch.Tensor:
    """The ReLU count (entries above ``threshold``) as a 0-d int64 tensor on the masks' device (not read)."""
    return sum((alpha.detach() > threshold).sum() for alpha in masks)


class DeviceSnapshots:
    """Budget snapshots taken on the device: per pending budget, a copy of the student's state that follows
    it until the count first falls to that budget (then it stays), and the count at that batch.
    :meth:`taken` reads the flags (one host sync)."""

    def __init__(self, student: nn.Module, budgets: list[int]) -> None:
        self.student = student
        state = [t.detach() for t in student.state_dict().values()]
        device = state[0].device
        self.names = list(student.state_dict())
        self.pending = {b: ([t.clone() for t in state], torch.zeros((), dtype=torch.bool, device=device),
                            torch.zeros((), dtype=torch.long, device=device)) for b in budgets}

    def step(self, count: torch.Tensor) -> None:
        """After a batch: every budget the count has fallen to for the first time keeps this state."""
        current = [t.detach() for t in self.student.state_dict().values()]
        with torch.no_grad():
            for budget, (copies, taken, at) in self.pending.items():
                take = (count <= budget) & ~taken
                for copy_, tensor in zip(copies, current):
                    copy_.copy_(torch.where(take, tensor, copy_))
                at.copy_(torch.where(take, count, at))
                taken.logical_or_(take)

    def taken(self) -> list[tuple[int, dict[str, torch.Tensor], int]]:
        """(budget, state on CPU, count) of every budget reached since the last call, largest budget first."""
        budgets = sorted(self.pending, reverse=True)
        if not budgets:
            return []
        flags = torch.stack([self.pending[b][1] for b in budgets]).tolist()
        reached = []
        for budget, flag in zip(budgets, flags):
            if flag:
                copies, _, at = self.pending.pop(budget)
                reached.append((budget, {n: t.cpu().clone() for n, t in zip(self.names, copies)}, int(at)))
        return reached


def snl_trajectory(base: nn.Module, bundle: DatasetBundle, budgets: list[int], config: SNLConfig, *,
                   seed: int = 0, device: torch.device | None = None, progress: ProgressFn | None = None,
                   cancel: CancelFlag | None = None, precision: str = "fp32",
                   read_every: int | None = None) -> tuple[list[SNLSnapshot], pd.DataFrame]:
    """Run SNL from ``base`` until every budget is reached (or ``config.epochs`` run out).

    Returns one snapshot per budget (``reached`` False when the run ended above it: the final state
    is used) and the per-epoch history (stage, epoch, loss, relu_count, lambda, val columns).
    precision: ``bf16`` autocast on CUDA (fp32 = the default, and always on CPU). read_every: batches between
    host reads of the device-side snapshot flags (None = 1 on CPU, read directly; 50 on CUDA); any value
    gives the same snapshots (see the module docstring).
    """
    from ..finetune.loop import validation_row

    config.validate()
    device = device or default_device()
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    student = for_training(copy.deepcopy(base).to(device), device)
    read_every = read_every or (50 if device.type == "cuda" else 1)
    masks = [site.alpha for _, site in activation_sites(student)]
    for alpha in masks:
        alpha.requires_grad_(True)
    mask_ids = {id(a) for a in masks}
    weights = [p for p in student.parameters() if id(p) not in mask_ids and p.requires_grad]
    optimizer = torch.optim.Adam([{"params": weights, "lr": config.lr}, {"params": masks, "lr": config.mask_lr}])
    train = bundle.splits["train"]
    data = DeviceRows(train.x, train.y, teacher_logits(base, train.x, device), device=device)

    pending = sorted(set(budgets), reverse=True)
    snapshots: dict[int, SNLSnapshot] = {}
    lam, best_count = config.lam, relu_count(student, config.threshold)
    history: list[dict[str, Any]] = []
    start_count = best_count
    on_device = DeviceSnapshots(student, pending) if read_every > 1 else None

    def harvest(epoch: int) -> None:
        assert on_device is not None
        for budget, state, count in on_device.taken():
            pending.remove(budget)
            snapshots[budget] = SNLSnapshot(budget, state, epoch, count, True)

    for epoch in range(1, config.epochs + 1):
        student.train()
        total, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        for step, index in enumerate(batch_indices(len(train), config.batch_size, generator), 1):
            check_cancel(cancel)
            task = snl_step(student, optimizer, masks, *data.rows(index), lam, config.temperature, precision)
            total += task.double() * len(index)
            seen += len(index)
            if on_device is None:
                count = int(device_relu_count(masks, config.threshold))
                while pending and count <= pending[0]:
                    budget = pending.pop(0)
                    snapshots[budget] = SNLSnapshot(budget, _cpu_state(student), epoch, count, True)
            elif pending:
                on_device.step(device_relu_count(masks, config.threshold))
                if step % read_every == 0:
                    harvest(epoch)
        if on_device is not None:
            harvest(epoch)
        count = relu_count(student, config.threshold)
        history.append({"stage": "snl", "epoch": epoch, "loss": float(total) / seen, "relu_count": count,
                        "lambda": lam,
                        **validation_row(student, bundle, device)})
        if count >= (1.0 - config.lam_min_progress) * best_count and epoch >= config.lam_patience_epochs:
            lam *= config.lam_growth
        best_count = min(best_count, count)
        target = pending[0] if pending else count
        done = 1.0 if not pending else min(1.0, (start_count - count) / max(1, start_count - target))
        report(progress, max(epoch / config.epochs, done), "snl", f"epoch {epoch}: {count} ReLUs",
               relu_count=count, loss=float(total) / seen, lam=lam)
        if not pending:
            break
    final = _cpu_state(student)
    for budget in pending:
        snapshots[budget] = SNLSnapshot(budget, final, config.epochs, relu_count(student, config.threshold), False)
    return [snapshots[b] for b in sorted(set(budgets), reverse=True)], pd.DataFrame(history)


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().cpu().clone() for name, tensor in model.state_dict().items()}


def binarize_masks(model: nn.Module, budget: int, *, exact: bool = True, threshold: float = RELU_THRESHOLD) -> int:
    """Freeze the masks of ``model`` to {0, 1} in place; returns the resulting ReLU count.

    exact: keep exactly ``budget`` entries, the largest alphas (ties by position);
    otherwise the reference rule alpha > threshold (may undershoot or exceed the budget).
    """
    sites = [site for _, site in activation_sites(model)]
    with torch.no_grad():
        if exact:
            flat = torch.cat([site.alpha.detach().flatten().cpu() for site in sites])
            keep = torch.zeros_like(flat)
            keep[torch.argsort(flat, descending=True, stable=True)[:budget]] = 1.0
            offset = 0
            for site in sites:
                size = site.alpha.numel()
                site.alpha.copy_(keep[offset:offset + size].view_as(site.alpha))
                offset += size
        else:
            for site in sites:
                site.alpha.copy_((site.alpha > threshold).to(site.alpha.dtype))
        for site in sites:
            site.alpha.requires_grad_(False)
    return relu_count(model, threshold)


class SNL(Linearizer):
    """SNL for a whole sweep: one trajectory, snapshotted at each budget, then binarised per budget
    (``options.exact``: exactly the budget, else the threshold rule). Placing is half a sweep's progress."""

    name = "snl"
    placing_share = 0.5

    def place_masks(self, base: nn.Module, base_spec: ModelSpec, bundle: DatasetBundle, budgets: Sequence[int],
                    options: LinearizeOptions, *, seed: int, device: torch.device,
                    progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> list[Placement]:
        snapshots, history = snl_trajectory(base, bundle, list(budgets), options.snl, seed=seed, device=device,
                                            progress=progress, cancel=cancel, precision=options.precision)
        by_budget = {s.budget: s for s in snapshots}
        placements = []
        for budget in budgets:
            snapshot = by_budget[budget]
            student = copy.deepcopy(base)
            student.load_state_dict(snapshot.state)
            achieved = binarize_masks(student, budget, exact=options.exact, threshold=options.snl.threshold)
            placements.append(Placement(student, base_spec,
                                        {"snl_epoch": snapshot.epoch, "snl_relu_count": snapshot.relu_count,
                                         "budget_reached": snapshot.reached, "exact": options.exact,
                                         "relu_count": achieved},
                                        history[history["epoch"] <= snapshot.epoch]))
        return placements


register_linearizer(SNL())
