"""Per-group gradient norms of the cross-entropy loss with respect to a model's weights.

The paper's group gradient norm of group a is ``||grad_theta L_a(theta)||`` where
``L_a = mean over the split's samples of group a of CE(f_theta(x), y)`` (natural log) and theta is
every weight of the model: all parameters except the activation masks ``alpha`` of the
:class:`~fairlin_core.models.LinearizableReLU` sites (they define the architecture, not the weights).

Models are evaluated in eval mode (batch norm uses its running statistics, as the reference does), so
samples do not interact and a batch's gradient is the sum of its samples' gradients. That makes the
group gradients cheap to get all at once: the split is partitioned by group and every sample goes
through exactly one forward and one backward pass, whatever the number of groups. (The reference
code runs one backward pass over the whole batch per group per batch, i.e. ``n_groups`` times the
work; ``benchmarks/bench_grad_norms.py`` measures the difference.)

Per-sample gradient norms (the distribution behind a group's mean) use ``torch.func``:
``vmap(grad(loss of one sample))`` over a batch, with weights, masks and buffers passed functionally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

from ..data import Split
from ..models import activation_sites
from ..runtime import CancelFlag, ProgressFn, batch_indices, check_cancel, default_device, report


def weight_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """(name, parameter) of every weight of ``model``: all parameters except the activation masks."""
    masks = {id(site.alpha) for _, site in activation_sites(model)}
    return [(name, p) for name, p in model.named_parameters() if id(p) not in masks]


@contextmanager
def evaluating(model: nn.Module, device: torch.device | None = None) -> Iterator[torch.device]:
    """Put ``model`` in eval mode on ``device`` (default: :func:`default_device`) for the block.

    Yields the device; the model's train/eval flag is restored afterwards (it stays on the device).
    """
    device = device or default_device()
    was_training = model.training
    model.eval().to(device)
    try:
        yield device
    finally:
        model.train(was_training)


def group_members(split: Split, group_index: int) -> torch.Tensor:
    """int64 indices (n_a,) into ``split`` of the samples of group ``group_index``."""
    return torch.nonzero(split.group == group_index).flatten()


def group_gradient_norms(model: nn.Module, split: Split, group_names: list[str], *, batch_size: int = 256,
                         device: torch.device | None = None, progress: ProgressFn | None = None,
                         cancel: CancelFlag | None = None) -> pd.DataFrame:
    """Norm of the gradient of every group's mean loss over ``split``, one row per group.

    Columns: group, group_index, n (samples), loss (mean cross-entropy, nats), grad_norm (L2 norm over
    all weights of d loss / d theta). Groups without samples get NaN. Each sample is forwarded and
    backpropagated once (the split is partitioned by group), in eval mode.
    """
    rows = []
    with evaluating(model, device) as device:
        params = [p for _, p in weight_parameters(model)]
        for index, name in enumerate(group_names):
            check_cancel(cancel)
            members = group_members(split, index)
            n = len(members)
            loss_sum = 0.0
            sums = [torch.zeros_like(p) for p in params]
            for batch in batch_indices(n, batch_size):
                chunk = members[batch]
                logits = model(split.x[chunk].to(device))
                loss = F.cross_entropy(logits, split.y[chunk].to(device), reduction="sum")
                for total, g in zip(sums, torch.autograd.grad(loss, params)):
                    total.add_(g)
                loss_sum += float(loss.detach())
            norm = torch.sqrt(sum(((s / n) ** 2).sum() for s in sums)).item() if n else float("nan")
            rows.append({"group": name, "group_index": index, "n": n,
                         "loss": loss_sum / n if n else float("nan"), "grad_norm": norm})
            report(progress, (index + 1) / len(group_names), "grad_norms", f"group {name}")
    return pd.DataFrame(rows, columns=["group", "group_index", "n", "loss", "grad_norm"])


def per_sample_gradient_norms(model: nn.Module, split: Split, group_names: list[str], *, batch_size: int = 64,
                              device: torch.device | None = None, progress: ProgressFn | None = None,
                              cancel: CancelFlag | None = None) -> pd.DataFrame:
    """Norm of every sample's own loss gradient, one row per sample of ``split``.

    Columns: index (position in the split), group, group_index, label, loss (cross-entropy, nats),
    grad_norm (L2 norm over all weights). Memory grows with batch_size x number of weights.
    """
    with evaluating(model, device) as device:
        weights = {name: p.detach() for name, p in weight_parameters(model)}
        frozen = {name: t.detach() for name, t in [*model.named_parameters(), *model.named_buffers()]
                  if name not in weights}

        def sample_loss(w: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            logits = functional_call(model, (w, frozen), (x.unsqueeze(0),))
            return F.cross_entropy(logits, y.unsqueeze(0))

        loss_and_grad = vmap(grad_and_value(sample_loss), in_dims=(None, 0, 0))
        norms, losses = [], []
        batches = list(batch_indices(len(split), batch_size))
        for step, batch in enumerate(batches):
            check_cancel(cancel)
            grads, loss = loss_and_grad(weights, split.x[batch].to(device), split.y[batch].to(device))
            norms.append(torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values())).cpu())
            losses.append(loss.detach().cpu())
            report(progress, (step + 1) / len(batches), "per_sample_gradients", f"batch {step + 1}/{len(batches)}")
    group = split.group.numpy()
    return pd.DataFrame({"index": range(len(split)), "group": [group_names[g] for g in group], "group_index": group,
                         "label": split.y.numpy(), "loss": torch.cat(losses).numpy() if losses else [],
                         "grad_norm": torch.cat(norms).numpy() if norms else []})

