"""View model of the Linearize form: what a budget means per method, and validated job configs. No streamlit here."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from fairlin_core.checkpoints import load_checkpoint, read_sidecar
from fairlin_core.errors import FairLinError, brief
from fairlin_core.finetune import AUTO, DEFAULT_MU, SELECTIONS, FinetuneConfig, mitigation_names
from fairlin_core.jobs import JobConfig, JobManager
from fairlin_core.linearizers import METHODS, nearest_configuration, resolve_budget
from fairlin_core.models import ModelSpec, relu_count

MITIGATION_MODES = ("off", "on", "both")
BUDGET_PRESETS = (20.0, 10.0, 5.0, 2.0, 1.0, 0.5)  # % of the base ReLUs, the shipped audit's grid
# the budget slider's stops (% of the base ReLUs): log-spaced, so 0.5% and 1% are as far apart as 50% and 100%
BUDGET_STEPS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 70.0, 100.0)
FORM_DIAGNOSTICS = ("accuracy", "grad", "hessian", "boundary", "bound", "attr")  # what the Why page draws
WHY_DIAGNOSTICS = ["grad", "hessian", "boundary", "bound"]


MITIGATION_METHODS = mitigation_names()[1:]  # lagrangian, reweight, groupdro: what "on" runs
SELECT_RULES = (AUTO, *SELECTIONS)
DEFAULT_SELECT = FinetuneConfig().select


def nearest_step(percent: float) -> float:
    """The budget slider's stop nearest to ``percent`` on a log scale."""
    return min(BUDGET_STEPS, key=lambda step: abs(math.log(step) - math.log(max(percent, 1e-6))))


def base_relu_count(checkpoint: str | Path) -> int:
    """The base checkpoint's ReLU count as recorded in its sidecar (counted from the model if absent)."""
    sidecar = read_sidecar(Path(checkpoint))
    count = sidecar.get("relu_count")
    if isinstance(count, int) and count > 0:
        return count
    return relu_count(load_checkpoint(checkpoint).model)


def budget_preview(checkpoint: str | Path, method: str, budget: int) -> dict[str, Any]:
    """What a budget means for ``method``: the ReLUs kept and, for deepreduce, the configuration used.

    Returns {"base_count", "requested", "count", "percent", "text"}.
    """
    if method not in METHODS:
        raise FairLinError(f"unknown method {brief(method)}; expected one of {', '.join(METHODS)}")
    base = base_relu_count(checkpoint)
    requested = resolve_budget(int(budget), base)
    count, text = requested, f"{method} keeps exactly {requested:,} of {base:,} ReLUs ({100 * requested / base:.2f}%)"
    if method == "snl":
        text = (f"SNL learns masks down to {requested:,} of {base:,} ReLUs ({100 * requested / base:.2f}%), "
                f"then finetunes with knowledge distillation")
    elif method == "random":
        text = f"random placement keeps {requested:,} of {base:,} ReLUs ({100 * requested / base:.2f}%) at random sites"
    elif method == "deepreduce":
        spec = ModelSpec.from_dict(read_sidecar(Path(checkpoint))["model"])
        config, count = nearest_configuration(spec, requested)
        text = (f"DeepReDuce configuration: {config.describe()} — {count:,} ReLUs "
                f"({100 * count / base:.2f}% of {base:,}); nearest to the requested {requested:,}")
    return {"base_count": base, "requested": requested, "count": count, "percent": 100 * count / base, "text": text}


def job_configs(checkpoint: str | Path, method: str, budget: int | float | str, seeds: list[int], *,
                snl_epochs: int, finetune_epochs: int, mitigation: str = "off", mu: float = DEFAULT_MU,
                method_mitigation: str = "lagrangian", select: str = DEFAULT_SELECT,
                group: str | None = None, data_root: str | None = None,
                diagnostics: list[str] | None = None) -> list[JobConfig]:
    """One validated JobConfig per seed and mitigation setting (``off``, ``on`` or ``both``); ``on`` runs
    ``method_mitigation`` (lagrangian with step ``mu``, reweight or groupdro); select: the finetune's
    validation selection rule (auto = constrained when mitigated, else overall; overall, worst-group,
    constrained); diagnostics: audit diagnostics computed for each run (the Why page draws them).

    diagnostics: audit diagnostics run on each saved model (e.g. ``FORM_DIAGNOSTICS``; the Why page draws
    them for these runs); None or empty = none.

    group: the protected attribute; when it differs from the checkpoint's own, the runs use the
    checkpoint's dataset grouped by ``group`` instead.
    """
    if mitigation not in MITIGATION_MODES:
        raise FairLinError(f"mitigation must be one of {', '.join(MITIGATION_MODES)}, got {brief(mitigation)}")
    if not seeds:
        raise FairLinError("no seeds chosen; expected at least one seed")
    dataset = None
    own = read_sidecar(Path(checkpoint)).get("dataset") or {}
    if group and own.get("name") and group != own.get("group"):
        dataset = {"name": own["name"], "options": {k: v for k, v in (own.get("options") or {}).items()
                                                     if k not in ("seed", "target", "group")},
                   "target": own.get("target"), "group": group, "seed": (own.get("options") or {}).get("seed", 0)}
    on = {"method": method_mitigation, **({"mu": float(mu)} if method_mitigation == "lagrangian" else {})}
    settings = {"off": [None], "on": [on], "both": [None, on]}[mitigation]
    configs = []
    for seed in seeds:
        for setting in settings:
            configs.append(JobConfig(checkpoint=str(checkpoint), method=method, budget=budget, seed=int(seed),
                                     snl={"epochs": int(snl_epochs)},
                                     finetune={"epochs": int(finetune_epochs), "select": select},
                                     mitigation=setting, dataset=dataset, data_root=data_root or None,
                                     diagnostics=list(diagnostics or [])).validate())
    return configs


def submit_jobs(manager: JobManager, configs: list[JobConfig]) -> list[str]:
    """Submit every config; identical configs already done or in flight return their run ids."""
    return [manager.submit(config) for config in configs]
