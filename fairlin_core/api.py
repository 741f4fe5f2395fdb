"""The notebook API: models in memory in, tidy tables out (``import fairlin_core as fl``).

::

    base = fl.load_checkpoint("checkpoints/digits_resnet18.safetensors")
    data = base.dataset()                                    # the checkpoint's own data and protocol
    lin = fl.linearize(base, "snl", "1%", data=data, finetune_epochs=20, seed=0)
    audit = fl.audit(base, lin, data=data, split="balanced", diagnostics=["accuracy", "grad", "hessian"])
    audit.by_group; audit.summary(); audit.save("out/")

``fl.audit`` is :func:`fairlin_core.audit.core.audit` (the in-memory audit lives with the audit wing).
Every function here composes the engine's own pieces (the CLI and the grid call the same ones); nothing
is written to disk unless asked (:meth:`Checkpoint.save`, :meth:`Audit.save`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from .audit.compare import Comparison, run_comparison
from .checkpoints import Checkpoint
from .data import DatasetBundle
from .errors import FairLinError
from .finetune import MitigationConfig, mitigation_factory
from .linearize import LinearizeOptions
from .linearize import linearize as linearize_model
from .linearize.output import linearized_checkpoint
from .runtime import CancelFlag, ProgressFn


def _mitigation(mitigation: MitigationConfig | dict[str, Any] | None) -> MitigationConfig | None:
    if mitigation is None or isinstance(mitigation, MitigationConfig):
        config = mitigation
    elif isinstance(mitigation, dict):
        config = MitigationConfig(**mitigation)
    else:
        raise FairLinError(f"mitigation must be None, a MitigationConfig or a dict such as {{'mu': 0.01}}, "
                           f"got {type(mitigation).__name__}")
    if config is not None:
        config.validate()
    return config


def _options(options: LinearizeOptions | None, snl_epochs: int | None, finetune_epochs: int | None) -> LinearizeOptions:
    options = options or LinearizeOptions()
    if snl_epochs is not None:
        options = replace(options, snl=replace(options.snl, epochs=snl_epochs))
    if finetune_epochs is not None:
        options = replace(options, finetune=replace(options.finetune, epochs=finetune_epochs))
    return options


def linearize(base: Checkpoint, method: str, budget: Any, *, data: DatasetBundle | None = None, seed: int = 0,
              finetune_epochs: int | None = None, snl_epochs: int | None = None,
              mitigation: MitigationConfig | dict[str, Any] | None = None, options: LinearizeOptions | None = None,
              device: torch.device | None = None, progress: ProgressFn | None = None,
              cancel: CancelFlag | None = None) -> Checkpoint:
    """Linearize ``base`` to ``budget`` ReLUs with ``method`` (snl, deepreduce, random) and finetune it.

    budget: a count (500), a fraction of the base count (0.01) or a percentage ("1%"); data: the
    base's own dataset when None; mitigation: None (plain KD finetune) or the fairness-constrained
    finetune's settings, e.g. ``{"mu": 0.01}``. Returns an in-memory :class:`Checkpoint` whose sidecar
    holds the method, counts, per-group accuracy before and after, and the per-epoch history.
    """
    bundle = base.resolve_data(data)
    config = _mitigation(mitigation)
    result = linearize_model(base.model, base.spec, bundle, method, budget,
                             options=_options(options, snl_epochs, finetune_epochs), seed=seed, device=device,
                             progress=progress, cancel=cancel,
                             objective_factory=mitigation_factory(bundle.group_names, config))
    return linearized_checkpoint(result, bundle, base_checkpoint=base.path,
                                 extra={"mitigation": config.to_dict() if config else None})


def compare(base: Checkpoint, method: str, budgets: Sequence[Any], *, seeds: Sequence[int] = (0, 1, 2),
            data: DatasetBundle | None = None, mitigation: MitigationConfig | dict[str, Any] | None = None,
            finetune_epochs: int | None = None, snl_epochs: int | None = None,
            options: LinearizeOptions | None = None, splits: Sequence[str] = ("test",),
            device: torch.device | None = None, progress: ProgressFn | None = None,
            cancel: CancelFlag | None = None) -> Comparison:
    """Mitigated vs unmitigated finetunes on the same masks for every budget and seed (``fairlin compare``).

    Returns a :class:`~fairlin_core.audit.compare.Comparison`: ``runs`` (one row per seed x budget x
    variant x group), ``rows`` (mean and 95% interval across seeds) and ``summary``.
    """
    bundle = base.resolve_data(data)
    config = _mitigation(mitigation) or MitigationConfig()
    config.validate()
    variants = {"unmitigated": (None, None), "mitigated": (mitigation_factory(bundle.group_names, config), None)}
    return run_comparison(base.model, base.spec, bundle, method, list(budgets), list(seeds), variants,
                          options=_options(options, snl_epochs, finetune_epochs), splits=tuple(splits),
                          device=device, progress=progress, cancel=cancel)


__all__ = ["compare", "linearize"]
