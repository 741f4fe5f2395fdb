"""Linearize a :class:`~fairlin_core.checkpoints.Checkpoint` in memory: the notebook's ``fl.linearize``."""

from __future__ import annotations

from typing import Any

import torch

from ..checkpoints import Checkpoint
from ..data import DatasetBundle
from ..finetune import MitigationConfig
from ..runtime import CancelFlag, ProgressFn
from .api import linearize, run_recipe
from .options import LinearizeOptions
from .output import linearized_checkpoint
from .recipe import LinearizeRecipe


def linearize_checkpoint(base: Checkpoint, method: str | None = None, budget: Any = None, *,
                         recipe: LinearizeRecipe | None = None, data: DatasetBundle | None = None,
                         seed: int | None = None, finetune_epochs: int | None = None, snl_epochs: int | None = None,
                         mitigation: MitigationConfig | dict[str, Any] | str | None = None,
                         options: LinearizeOptions | None = None, device: torch.device | None = None,
                         progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> Checkpoint:
    """Linearize ``base`` to ``budget`` ReLUs with ``method`` (snl, deepreduce, random) and finetune it.

    What runs is one :class:`LinearizeRecipe`: ``recipe=``, or the one the keywords spell
    (:func:`~fairlin_core.linearizers.api.run_recipe`): budget: a count (500), a fraction of the base count (0.01)
    or a percentage ("1%"); seed: default 0; mitigation: None or ``"none"`` (plain KD finetune), a method name
    (``"lagrangian"``, ``"reweight"``, ``"groupdro"``) or its settings, e.g. ``{"method": "lagrangian", "mu": 0.01,
    "normalize": True}`` (see MitigationConfig); options: SNL schedule, finetune (its ``select`` is the
    validation selection) and precision, and the placement choices (``exact``, ``deepreduce``). snl_epochs /
    finetune_epochs replace the recipe's epochs (None keeps them). data: the base's own dataset when None
    (checked against the model's input and classes).
    Returns an in-memory :class:`Checkpoint` (``path`` None until saved) whose sidecar holds the method,
    counts, per-group accuracy before and after, and the per-epoch history.
    """
    bundle = base.resolve_data(data)
    recipe = run_recipe(recipe, method, budget, seed=seed, options=options, mitigation=mitigation).with_epochs(
        snl_epochs, finetune_epochs)
    result = linearize(base.model, base.spec, bundle, recipe=recipe, options=options, device=device,
                       progress=progress, cancel=cancel)
    mitigated = recipe.mitigation
    return linearized_checkpoint(result, bundle, base_checkpoint=base.path,
                                 extra={"mitigation": mitigated.to_dict() if mitigated else None})
