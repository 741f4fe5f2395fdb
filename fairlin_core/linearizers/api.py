"""One interface for every linearizer: base model + data + method + ReLU budget -> linearized model.

``linearize`` runs one budget, ``linearize_sweep`` several (SNL shares one trajectory between them).
Methods are looked up by name in the linearizer registry (``base.py``), which places the masks.
Every method ends with the same masks-frozen KD finetune from the base model as teacher, selected on
the validation split; test (and balanced) accuracy is only reported.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..data import DatasetBundle
from ..errors import FairLinError, brief, check_seed
from ..metrics import evaluate_model
from ..finetune import BatchObjective, FinetuneConfig, finetune
from ..models import ModelSpec, get_masks, relu_count, total_sites
from ..runtime import CancelFlag, ProgressFn, default_device, merge_duplicates, scaled_progress
from .base import LINEARIZERS, get_linearizer
from .options import LinearizeOptions

# importing a method's module registers its linearizer: this order is the order of METHODS
from . import snl  # noqa: E402, F401, I001  (registers "snl")
from . import deepreduce  # noqa: E402, F401  (registers "deepreduce")
from . import random_masks  # noqa: E402, F401  (registers "random")

METHODS = tuple(LINEARIZERS)  # the built-in methods, by name
REPORT_SPLITS = ("test", "balanced")


@dataclass
class LinearizationResult:
    """A linearized, finetuned model with its binary masks, counts, configuration and history.

    budget_requested: as asked (count, fraction or text); budget: the ReLU count aimed at.
    evaluations: {"base" | "linearized" | "finetuned": {split: evaluate_model(...) dict}} on the
    reporting splits ("linearized" = masks applied, before finetuning).
    history: per-epoch rows of every stage (SNL then finetune).
    """

    method: str
    budget_requested: Any
    budget: int
    relu_count: int
    base_relu_count: int
    model: nn.Module
    spec: ModelSpec
    masks: dict[str, torch.Tensor]
    configuration: dict[str, Any]
    history: pd.DataFrame
    evaluations: dict[str, dict[str, Any]]
    seed: int
    options: LinearizeOptions

    def group_table(self, split: str = "test") -> pd.DataFrame:
        """Tidy per-group accuracy after finetuning next to the base model: group, n, accuracy, base_accuracy."""
        after = pd.DataFrame(self.evaluations["finetuned"][split]["groups"])
        base = pd.DataFrame(self.evaluations["base"][split]["groups"])
        return after.assign(base_accuracy=base["accuracy"].to_numpy(),
                            linearized_accuracy=pd.DataFrame(self.evaluations["linearized"][split]["groups"])
                            ["accuracy"].to_numpy())


def resolve_budget(budget: Any, base_count: int) -> int:
    """ReLU count for a budget given as an int count, a float fraction in (0, 1], or text ("500", "0.1", "10%")."""
    value = budget
    if isinstance(budget, str):
        text = budget.strip()
        try:
            if text.endswith("%"):
                value = float(text[:-1]) / 100.0
            elif re.fullmatch(r"[+-]?\d+", text):
                value = int(text)
            else:
                value = float(text)
        except ValueError:
            raise FairLinError(f"budget {brief(budget)} is not a number; expected a ReLU count (e.g. 500), a fraction "
                               f"of the base count (e.g. 0.1) or a percentage (e.g. 10%)") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FairLinError(f"budget {brief(budget)} is not a number; expected a ReLU count or a fraction")
    if isinstance(value, float):
        if value != value or not 0.0 < value <= 1.0:
            raise FairLinError(f"budget fraction {brief(budget)} must be in (0, 1] of the base ReLU count {base_count}")
        count = max(1, round(value * base_count))
    else:
        count = value
    if count <= 0:
        raise FairLinError(f"budget must be positive, got {brief(budget)}; expected 1..{base_count} ReLUs")
    if count > base_count:
        raise FairLinError(f"budget {brief(budget)} is above the base model's {base_count} ReLUs; expected at most that")
    return int(count)


def unique_budgets(budgets: Sequence[Any], base_count: int) -> tuple[list[Any], list[str]]:
    """``budgets`` with those that resolve to the same ReLU count merged (``16`` and ``0.5`` of 32), in
    first-seen order, and one note per merge; FairLinError for an invalid budget (:func:`resolve_budget`)."""
    return merge_duplicates(budgets, "budget", key=lambda budget: resolve_budget(budget, base_count), unit="ReLUs")


def _evaluate_all(model: nn.Module, bundle: DatasetBundle) -> dict[str, Any]:
    return {split: evaluate_model(model, bundle, split) for split in REPORT_SPLITS if split in bundle.splits}


@dataclass
class Student:
    """A linearized (masks frozen), not yet finetuned model for one budget, with what produced it."""

    budget_requested: Any
    budget: int
    model: nn.Module
    spec: ModelSpec
    configuration: dict[str, Any]
    history: pd.DataFrame
    evaluations: dict[str, Any]


@dataclass
class Prepared:
    """The output of the linearization stage for a sweep: the base model, its evaluation and one student
    per budget. ``finish`` may be called on the same students several times (plain and mitigated)."""

    method: str
    base: nn.Module
    base_count: int
    base_evaluations: dict[str, Any]
    students: list[Student]
    seed: int
    options: LinearizeOptions


def prepare_students(base: nn.Module, base_spec: ModelSpec, bundle: DatasetBundle, method: str, budgets: list[Any], *,
                     options: LinearizeOptions | None = None, seed: int = 0, device: torch.device | None = None,
                     progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> Prepared:
    """Place the masks for every budget with the method's linearizer (SNL: one shared trajectory) and
    evaluate the students; nothing is finetuned yet. budgets: counts, fractions or text (see resolve_budget)."""
    linearizer = get_linearizer(method)
    if not budgets:
        raise FairLinError("no budget given; expected at least one")
    seed = check_seed(seed)
    bundle.require("train", "val", purpose="linearizing (masks are fitted on train, finetuning selects on val)")
    options = (options or LinearizeOptions()).validate()
    device = device or default_device()
    if total_sites(base) == 0:
        found = getattr(base, "fairlin_report", None)
        others = ", ".join(f"{k} x{v}" for k, v in (found.other_activations if found else {}).items())
        raise FairLinError(f"{method} refused: the model has no ReLU to linearize"
                           + (f" (its activations are {others}, which FairLin reports but never linearizes)" if others
                              else "") + "; linearizers work on ReLU sites only")
    base = copy.deepcopy(base).eval()
    base_count = relu_count(base)
    if base_count != total_sites(base):
        raise FairLinError(f"the base model already has linearized ReLUs ({base_count} of {total_sites(base)} on); "
                           f"expected a base checkpoint with every ReLU on")
    targets = [resolve_budget(b, base_count) for b in budgets]
    linearizer.check(base_spec)
    placements = linearizer.place_masks(base, base_spec, bundle, targets, options, seed=seed, device=device,
                                        progress=progress, cancel=cancel)
    students = [Student(budget_requested=b, budget=t, model=p.model, spec=p.spec, configuration=p.configuration,
                        history=p.history, evaluations=_evaluate_all(p.model, bundle))
                for b, t, p in zip(budgets, targets, placements, strict=True)]
    return Prepared(method=method, base=base, base_count=base_count, base_evaluations=_evaluate_all(base, bundle),
                    students=students, seed=seed, options=options)


def finish(prepared: Prepared, student: Student, bundle: DatasetBundle, *, device: torch.device | None = None,
           progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
           objective_factory: Callable[[], BatchObjective] | None = None,
           finetune_config: FinetuneConfig | None = None) -> LinearizationResult:
    """Finetune one student from the base teacher (masks frozen) and package the result.

    objective_factory: the finetune's batch objective (None = plain KD finetune; the mitigations plug in
    here); finetune_config overrides ``prepared.options.finetune`` (its ``select`` picks the epoch kept).
    """
    config = finetune_config or prepared.options.finetune
    return finish_selections(prepared, student, bundle, (config.select,), device=device, progress=progress,
                             cancel=cancel, objective_factory=objective_factory,
                             finetune_config=config)[config.select]


def finish_selections(prepared: Prepared, student: Student, bundle: DatasetBundle, rules: Sequence[str], *,
                      device: torch.device | None = None, progress: ProgressFn | None = None,
                      cancel: CancelFlag | None = None, objective_factory: Callable[[], BatchObjective] | None = None,
                      finetune_config: FinetuneConfig | None = None) -> dict[str, LinearizationResult]:
    """Like :func:`finish`, from ONE finetune, one result per validation selection rule in ``rules`` (rules that
    select the same epoch share one evaluation)."""
    config = finetune_config or prepared.options.finetune
    tuned = finetune(student.model, prepared.base, bundle, config, seed=prepared.seed,
                     device=device or default_device(),
                     objective=objective_factory() if objective_factory else None, progress=progress, cancel=cancel,
                     precision=prepared.options.precision)
    history = pd.concat([student.history, tuned.history], ignore_index=True)
    results, evaluated = {}, {}
    for rule in rules:
        epoch, model = tuned.model_for(rule)
        if epoch not in evaluated:
            evaluated[epoch] = _evaluate_all(model, bundle)
        results[rule] = LinearizationResult(
            method=prepared.method, budget_requested=student.budget_requested, budget=student.budget,
            relu_count=relu_count(model), base_relu_count=prepared.base_count, model=model, spec=student.spec,
            masks=get_masks(model), configuration={**student.configuration, "finetune_best_epoch": epoch,
                                                   "finetune_select": tuned.select if rule == "auto" else rule},
            history=history, evaluations={"base": prepared.base_evaluations, "linearized": student.evaluations,
                                          "finetuned": evaluated[epoch]},
            seed=prepared.seed, options=prepared.options)
    return results


def linearize_sweep(base: nn.Module, base_spec: ModelSpec, bundle: DatasetBundle, method: str, budgets: list[Any], *,
                    options: LinearizeOptions | None = None, seed: int = 0, device: torch.device | None = None,
                    progress: ProgressFn | None = None, cancel: CancelFlag | None = None,
                    objective_factory: Callable[[], BatchObjective] | None = None) -> list[LinearizationResult]:
    """Linearize ``base`` at every budget (in the order given); ``base`` itself is left unchanged.

    objective_factory: builds the finetune's batch objective per budget (None = plain KD finetune).
    """
    placing = get_linearizer(method).placing_share
    prepared = prepare_students(base, base_spec, bundle, method, budgets, options=options, seed=seed, device=device,
                                progress=scaled_progress(progress, 0.0, placing), cancel=cancel)
    span = (1.0 - placing) / len(prepared.students)
    return [finish(prepared, student, bundle, device=device, cancel=cancel, objective_factory=objective_factory,
                   progress=scaled_progress(progress, placing + i * span, placing + (i + 1) * span,
                                            f"budget {student.budget_requested}: " if len(budgets) > 1 else ""))
            for i, student in enumerate(prepared.students)]


def linearize(base: nn.Module, base_spec: ModelSpec, bundle: DatasetBundle, method: str, budget: Any,
              **kwargs: Any) -> LinearizationResult:
    """Linearize at one budget; see :func:`linearize_sweep` for the arguments."""
    return linearize_sweep(base, base_spec, bundle, method, [budget], **kwargs)[0]

