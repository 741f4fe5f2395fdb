"""View model of the Linearize form: what a budget means per method, the form's recipes and their validated job
configs. No streamlit here."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from fairlin_core.audits import DIAGNOSTICS
from fairlin_core.checkpoints import load_checkpoint, read_sidecar
from fairlin_core.errors import FairLinError, brief
from fairlin_core.finetune import AUTO, SELECTIONS, MitigationConfig, mitigation_names
from fairlin_core.jobs import JobConfig, JobManager
from fairlin_core.linearizers import METHODS, LinearizeRecipe, nearest_configuration, resolve_budget
from fairlin_core.models import ModelSpec, relu_count

MITIGATION_MODES = ("off", "on", "both")  # the form's radio: per seed a plain run, a mitigated one, or both
BUDGET_PRESETS = (20.0, 10.0, 5.0, 2.0, 1.0, 0.5)  # % of the base ReLUs, the shipped audit's grid
# the budget slider's stops (% of the base ReLUs): log-spaced, so 0.5% and 1% are as far apart as 50% and 100%
BUDGET_STEPS = (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 70.0, 100.0)


MITIGATION_METHODS = mitigation_names()[1:]  # lagrangian, reweight, groupdro: what "on" runs
SELECT_RULES = (AUTO, *SELECTIONS)
# the form's first values: the recipe's defaults with a quick schedule (30 SNL / 10 finetune epochs) for a sweep
FORM_RECIPE = LinearizeRecipe().with_epochs(30, 10)
DEFAULT_SELECT = FORM_RECIPE.finetune.select
DEFAULT_MITIGATION = MitigationConfig()  # what "on" runs unless another method or mu is chosen


def form_diagnostics() -> list[str]:
    """The audit diagnostics the form offers, in registry order."""
    return [name for name, diagnostic in DIAGNOSTICS.items() if diagnostic.offered]


def preselected_diagnostics() -> list[str]:
    """The diagnostics the form ticks until the user chooses (those the Why page's charts across budgets need)."""
    return [name for name, diagnostic in DIAGNOSTICS.items() if diagnostic.preselected]


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


def form_mitigations(mode: str, method: str = DEFAULT_MITIGATION.method,
                     mu: float | None = None) -> list[MitigationConfig | None]:
    """The mitigations of the form's radio ``mode``: off = [none], on = [``method``], both = [none, ``method``];
    mu: the lagrangian's step size (None = its default; the other methods have no mu)."""
    if mode not in MITIGATION_MODES:
        raise FairLinError(f"mitigation must be one of {', '.join(MITIGATION_MODES)}, got {brief(mode)}")
    on = MitigationConfig.coerce({"method": method, **({"mu": mu} if method == "lagrangian" and mu is not None
                                                       else {})})
    return {"off": [None], "on": [on], "both": [None, on]}[mode]


def form_recipes(method: str, budget: int | float | str, seeds: list[int], *,
                 mitigations: list[MitigationConfig | None] | None = None, snl_epochs: int | None = None,
                 finetune_epochs: int | None = None, select: str | None = None,
                 diagnostics: list[str] | None = None) -> list[LinearizeRecipe]:
    """One validated recipe per seed x mitigation (None = a plain finetune; default [None]) with the form's fields;
    a field left None keeps the recipe's default. select: the finetune's validation selection rule (auto =
    constrained when mitigated, else overall; overall, worst-group, constrained); diagnostics: audit diagnostics
    run on each saved model (e.g. :func:`form_diagnostics`; the Why page draws them for these runs)."""
    if not seeds:
        raise FairLinError("no seeds chosen; expected at least one seed")
    template = LinearizeRecipe.from_dict({"method": method, "budget": budget, "diagnostics": list(diagnostics or []),
                                          "finetune": {} if select is None else {"select": select}})
    template = template.with_epochs(snl_epochs, finetune_epochs)
    return [replace(template, seed=int(seed), mitigation=mitigation).validate()
            for seed in seeds for mitigation in (mitigations or [None])]


def recipe_job_configs(checkpoint: str | Path, recipes: list[LinearizeRecipe], *, group: str | None = None,
                       data_root: str | None = None) -> list[JobConfig]:
    """One validated JobConfig per recipe on ``checkpoint``. group: the protected attribute; when it differs from
    the checkpoint's own, the runs use the checkpoint's dataset grouped by ``group`` instead."""
    dataset = None
    own = read_sidecar(Path(checkpoint)).get("dataset") or {}
    if group and own.get("name") and group != own.get("group"):
        dataset = {"name": own["name"], "options": {k: v for k, v in (own.get("options") or {}).items()
                                                     if k not in ("seed", "target", "group")},
                   "target": own.get("target"), "group": group, "seed": (own.get("options") or {}).get("seed", 0)}
    return [JobConfig(str(checkpoint), recipe, dataset=dataset, data_root=data_root or None).validate()
            for recipe in recipes]


def submit_recipes(manager: JobManager, checkpoint: str | Path, recipes: list[LinearizeRecipe], *,
                   group: str | None = None, data_root: str | None = None) -> list[str]:
    """Validate one job config per recipe (:func:`recipe_job_configs`) and submit them all; returns the run ids
    (identical runs reused). Nothing is submitted if any config is invalid."""
    return [manager.submit(config) for config in recipe_job_configs(checkpoint, recipes, group=group,
                                                                    data_root=data_root)]


def submit_form(manager: JobManager, checkpoint: str | Path, method: str, budget: int | float | str, seeds: list[int],
                *, mode: str, mitigation_method: str = DEFAULT_MITIGATION.method, mu: float | None = None,
                snl_epochs: int | None = None, finetune_epochs: int | None = None, select: str | None = None,
                diagnostics: list[str] | None = None, group: str | None = None,
                data_root: str | None = None) -> list[str]:
    """The Linearize form's submit in one step: its fields -> :func:`form_mitigations` -> :func:`form_recipes` ->
    :func:`submit_recipes`; returns the run ids (FairLinError, nothing submitted, if any field or config is invalid)."""
    recipes = form_recipes(method, budget, seeds, mitigations=form_mitigations(mode, mitigation_method, mu),
                           snl_epochs=snl_epochs, finetune_epochs=finetune_epochs, select=select,
                           diagnostics=diagnostics)
    return submit_recipes(manager, checkpoint, recipes, group=group, data_root=data_root)
