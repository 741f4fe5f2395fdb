"""Per-group input attributions with captum: the mean absolute attribution map of every group.

Methods offered (captum's uniform ``.attribute()`` API, target = each sample's true label by default):

- ``saliency``: |d z_target / d x| (captum ``Saliency``).
- ``integrated_gradients``: (x - x0) times the path-averaged gradient from the all-zero baseline x0
  (the dataset mean, since inputs are normalised), captum ``IntegratedGradients``.

Both only differentiate the model, so they are exact for FairLin's linearizable activations. Methods
that override the backward pass of activation *modules* -- captum's DeepLift, DeepLiftShap,
GuidedBackprop, Deconvolution and GuidedGradCam -- hook ``nn.ReLU`` instances; a
:class:`~fairlin_core.models.LinearizableReLU` is not one (and is partly linear), so they would
silently attribute through it as if it were the identity or a plain ReLU. They are deliberately not
offered.

Maps are averaged over a group's samples of |attribution| and returned in long, tidy form: one row
per group, method and input element (flat C-order index into the input shape);
:func:`attribution_map` reshapes one map back to the input's shape.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from captum.attr import IntegratedGradients, Saliency
from torch import nn

from ..data import Split
from ..errors import FairLinError, brief
from ..limits import check_count
from ..runtime import CancelFlag, ProgressFn, batch_indices, check_cancel, report
from .gradients import evaluating, group_members

ATTRIBUTION_METHODS = ("saliency", "integrated_gradients")
TARGETS = ("label", "prediction")


def _attribute(model: nn.Module, method: str, x: torch.Tensor, target: torch.Tensor, n_steps: int,
               batch_size: int) -> torch.Tensor:
    if method == "saliency":
        return Saliency(model).attribute(x, target=target, abs=True)
    return IntegratedGradients(model).attribute(x, baselines=torch.zeros_like(x), target=target, n_steps=n_steps,
                                                internal_batch_size=batch_size)


def group_attributions(model: nn.Module, split: Split, group_names: list[str], *,
                       methods: Sequence[str] = ATTRIBUTION_METHODS, target: str = "label", n_steps: int = 32,
                       batch_size: int = 128, device: torch.device | None = None,
                       progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> pd.DataFrame:
    """Mean absolute attribution per group, method and input element.

    target: ``label`` (each sample's true class) or ``prediction`` (the model's top-1 class).
    Columns: group, group_index, n, method, element (flat index into the input shape), value (mean
    |attribution|; input units times logit units per input unit, i.e. logit units for integrated
    gradients). Groups without samples are left out.
    """
    check_count(n_steps, "integrated-gradients n_steps", "attribution_steps")
    unknown = sorted(set(methods) - set(ATTRIBUTION_METHODS))
    if unknown or not methods:
        raise FairLinError(f"unknown attribution method(s) {unknown or list(methods)}; expected one or more of "
                           f"{', '.join(ATTRIBUTION_METHODS)} (activation-hooking methods such as DeepLift are "
                           f"not offered: they are wrong with linearizable activations)")
    if target not in TARGETS:
        raise FairLinError(f"attribution target must be one of {', '.join(TARGETS)}, got {brief(target)}")
    parts = []
    steps = len(methods) * len(group_names)
    with evaluating(model, device) as device:
        for m_index, method in enumerate(methods):
            for index, name in enumerate(group_names):
                members = group_members(split, index)
                if len(members):
                    total = torch.zeros(split.x.shape[1:], dtype=torch.float64)
                    for batch in batch_indices(len(members), batch_size):
                        check_cancel(cancel)
                        x = split.x[members[batch]].to(device).requires_grad_(True)
                        if target == "label":
                            labels = split.y[members[batch]].to(device)
                        else:
                            with torch.no_grad():
                                labels = model(x).argmax(1)
                        attribution = _attribute(model, method, x, labels, n_steps, batch_size)
                        total += attribution.detach().abs().sum(0).double().cpu()
                    values = (total / len(members)).flatten().numpy()
                    parts.append(pd.DataFrame({"group": name, "group_index": index, "n": len(members),
                                               "method": method, "element": np.arange(len(values)),
                                               "value": values}))
                report(progress, (m_index * len(group_names) + index + 1) / steps, "attributions",
                       f"{method}, group {name}")
    columns = ["group", "group_index", "n", "method", "element", "value"]
    return pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)


def attribution_map(table: pd.DataFrame, group: str, method: str, input_shape: Sequence[int]) -> np.ndarray:
    """The mean absolute attribution map of one group and method, shaped like one input (e.g. (C, H, W))."""
    rows = table[(table["group"] == group) & (table["method"] == method)].sort_values("element")
    if len(rows) != int(np.prod(input_shape)):
        raise FairLinError(f"no complete {method} map for group {brief(group)} of shape {tuple(input_shape)} in the table")
    return rows["value"].to_numpy().reshape(tuple(input_shape))
