"""Linearize a :class:`~fairlin_core.checkpoints.Checkpoint` in memory: the notebook's ``fl.linearize``."""

from __future__ import annotations

from typing import Any

import torch

from ..checkpoints import Checkpoint
from ..data import DatasetBundle
from ..finetune import MitigationConfig, mitigation_factory
from ..runtime import CancelFlag, ProgressFn
from .api import linearize
from .options import LinearizeOptions
from .output import linearized_checkpoint


def linearize_checkpoint(base: Checkpoint, method: str, budget: Any, *, data: DatasetBundle | None = None,
                         seed: int = 0, finetune_epochs: int | None = None, snl_epochs: int | None = None,
                         mitigation: MitigationConfig | dict[str, Any] | str | None = None,
                         options: LinearizeOptions | None = None, device: torch.device | None = None,
                         progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> Checkpoint:
    """Linearize ``base`` to ``budget`` ReLUs with ``method`` (snl, deepreduce, random) and finetune it.

    budget: a count (500), a fraction of the base count (0.01) or a percentage ("1%"); data: the
    base's own dataset when None (checked against the model's input and classes); mitigation: None or
    ``"none"`` (plain KD finetune), a method name (``"lagrangian"``, ``"reweight"``, ``"groupdro"``) or its
    settings, e.g. ``{"method": "lagrangian", "mu": 0.01, "normalize": True}`` (see MitigationConfig);
    the finetune's validation selection is ``options.finetune.select``.
    Returns an in-memory :class:`Checkpoint` (``path`` None until saved) whose sidecar holds the method,
    counts, per-group accuracy before and after, and the per-epoch history.
    """
    bundle = base.resolve_data(data)
    config = MitigationConfig.coerce(mitigation)
    result = linearize(base.model, base.spec, bundle, method, budget,
                       options=(options or LinearizeOptions()).with_epochs(snl_epochs, finetune_epochs), seed=seed,
                       device=device, progress=progress, cancel=cancel,
                       objective_factory=mitigation_factory(bundle, config))
    return linearized_checkpoint(result, bundle, base_checkpoint=base.path,
                                 extra={"mitigation": config.to_dict() if config else None})
