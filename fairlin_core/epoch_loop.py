"""The one training loop under base training, SNL, the KD finetune and the 2D toy: epochs of shuffled batches,
a cancel check before every batch, the forward pass under the run's precision, the update, and the epoch's loss
summed on the device and read once per epoch."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from .runtime import CancelFlag, autocast, batch_indices, check_cancel

Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""index (B,) of the batch's rows -> (objective to minimise (0-d), the batch's summed loss (0-d, detached))."""


def batches_per_epoch(rows: int, batch_size: int) -> int:
    """How many batches :func:`~fairlin_core.runtime.batch_indices` makes of ``rows`` (e.g. a schedule's length)."""
    return len(list(batch_indices(rows, batch_size)))


def run_epochs(model: nn.Module, optimizer: torch.optim.Optimizer, forward: Forward, *, epochs: int, rows: int,
               batch_size: int, end_epoch: Callable[[int, float], bool | None],
               generator: torch.Generator | None = None,
               scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
               after_step: Callable[[int, int], None] | None = None, device: torch.device,
               precision: str = "fp32", cancel: CancelFlag | None = None) -> None:
    """Train ``model`` for up to ``epochs`` epochs over ``rows`` rows in batches of ``batch_size``.

    Every epoch: ``model.train()``, then per batch of :func:`~fairlin_core.runtime.batch_indices` (shuffled by
    ``generator``; None = in order): a cancel check, ``forward(index)`` under ``autocast(device, precision)``,
    ``zero_grad`` / ``backward`` / ``optimizer.step()`` / ``scheduler.step()`` (when given), then
    ``after_step(epoch, batch)`` (1-based). The batches' summed losses add up on the device in float64;
    ``end_epoch(epoch, mean loss per row)`` (epoch 1-based) validates, records and reports, and ends the run
    early by returning True.
    """
    for epoch in range(1, epochs + 1):
        model.train()
        total, seen = torch.zeros((), dtype=torch.float64, device=device), 0
        for batch, index in enumerate(batch_indices(rows, batch_size, generator), 1):
            check_cancel(cancel)
            with autocast(device, precision):
                objective, loss_sum = forward(index)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            if after_step is not None:
                after_step(epoch, batch)
            total += loss_sum.double()
            seen += len(index)
        if end_epoch(epoch, float(total) / seen):
            return
