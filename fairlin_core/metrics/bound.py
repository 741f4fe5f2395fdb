"""The paper's Theorem 4.4: per-group excess loss of the linearized model against its upper bound.

For group a with mean cross-entropy loss L_a (nats) over a split,

    R(a) = L_a(theta_lin) - L_a(theta_base)  <=  ||g_a|| d + 1/2 lambda_max(H_a) d^2

with g_a and H_a the gradient and Hessian of L_a at the *base* model, and d = ||theta_lin - theta_base||
the distance between the two models' weights. Weights are the parameters gradients and Hessians are
taken over (every parameter except the activation masks); batch-norm running statistics are
buffers, not weights, and are left out unless ``include_buffers`` is set. The bound is a second-order
Taylor expansion that ignores the change of activation functions, so it may fail for models far from
each other or poorly trained (the paper's remark after Theorem 4.4); the table reports whether it holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data import Split
from ..errors import FairLinError
from ..runtime import CancelFlag, ProgressFn, batch_indices, check_cancel, report
from .gradients import evaluating, group_gradient_norms, weight_parameters
from .hessian import group_hessian_eigenvalues


def _distance_tensors(model: nn.Module, include_buffers: bool) -> dict[str, torch.Tensor]:
    tensors = dict(weight_parameters(model))
    if include_buffers:
        tensors.update((name, b) for name, b in model.named_buffers()
                       if b.is_floating_point() and not name.endswith("num_batches_tracked"))
    return tensors


def parameter_distance(base: nn.Module, linearized: nn.Module, *, include_buffers: bool = False) -> float:
    """||theta_lin - theta_base||_2 over the weights both models share (activation masks excluded).

    include_buffers: also count floating-point buffers such as batch-norm running means and variances
    (never num_batches_tracked). Raises FairLinError when the weights' names or shapes differ.
    """
    a, b = _distance_tensors(base, include_buffers), _distance_tensors(linearized, include_buffers)
    if {k: tuple(v.shape) for k, v in a.items()} != {k: tuple(v.shape) for k, v in b.items()}:
        raise FairLinError("the two models have different weights (names or shapes); expected the same "
                           "architecture for the base and the linearized model")
    squared = sum(float((a[name].detach().double().cpu() - b[name].detach().double().cpu()).pow(2).sum())
                  for name in a)
    return float(np.sqrt(squared))


@torch.no_grad()
def group_losses(model: nn.Module, split: Split, group_names: list[str], *, batch_size: int = 512,
                 device: torch.device | None = None) -> pd.DataFrame:
    """Mean cross-entropy (nats) of every group over ``split`` in eval mode: group, group_index, n, loss."""
    sums = torch.zeros(len(group_names), dtype=torch.float64)
    with evaluating(model, device) as device:
        for batch in batch_indices(len(split), batch_size):
            logits = model(split.x[batch].to(device))
            losses = F.cross_entropy(logits, split.y[batch].to(device), reduction="none")
            sums.index_add_(0, split.group[batch], losses.double().cpu())
    counts = torch.bincount(split.group, minlength=len(group_names))
    mean = torch.where(counts > 0, sums / counts.clamp(min=1), torch.full_like(sums, float("nan")))
    return pd.DataFrame({"group": group_names, "group_index": range(len(group_names)), "n": counts.numpy(),
                         "loss": mean.numpy()})


def theorem_bound(base: nn.Module, linearized: nn.Module, split: Split, group_names: list[str], *,
                  grad_norms: pd.DataFrame | None = None, eigenvalues: pd.DataFrame | None = None,
                  include_buffers: bool = False, seed: int = 0, device: torch.device | None = None,
                  progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> pd.DataFrame:
    """Theorem 4.4 per group, one row per group.

    Columns: group, group_index, n, grad_norm (||g_a|| at the base model), lambda_max (top Hessian
    eigenvalue at the base model), distance (d), bound, loss_base, loss_lin, excess_loss (R(a), nats),
    holds (excess_loss <= bound). ``grad_norms`` (a :func:`group_gradient_norms` table of the base
    model) and ``eigenvalues`` (a :func:`group_hessian_eigenvalues` table of the base model) are
    computed when not given.
    """
    distance = parameter_distance(base, linearized, include_buffers=include_buffers)
    if grad_norms is None:
        grad_norms = group_gradient_norms(base, split, group_names, device=device, cancel=cancel)
    report(progress, 0.3, "bound", "gradient norms")
    if eigenvalues is None:
        eigenvalues = group_hessian_eigenvalues(base, split, group_names, seed=seed, device=device, cancel=cancel)
    report(progress, 0.9, "bound", "Hessian eigenvalues")
    check_cancel(cancel)
    top = eigenvalues[eigenvalues["rank"] == 1].set_index("group_index")["eigenvalue"]
    table = grad_norms[["group", "group_index", "n", "grad_norm"]].copy()
    table["lambda_max"] = table["group_index"].map(top).to_numpy()
    table["distance"] = distance
    table["bound"] = table["grad_norm"] * distance + 0.5 * table["lambda_max"] * distance ** 2
    table["loss_base"] = group_losses(base, split, group_names, device=device)["loss"].to_numpy()
    table["loss_lin"] = group_losses(linearized, split, group_names, device=device)["loss"].to_numpy()
    table["excess_loss"] = table["loss_lin"] - table["loss_base"]
    table["holds"] = table["excess_loss"] <= table["bound"]
    report(progress, 1.0, "bound", "excess losses")
    return table
