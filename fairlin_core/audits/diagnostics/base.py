"""The diagnostic protocol and its registry: every audit diagnostic is one :class:`Diagnostic`, looked up by name.

A diagnostic measures a base model and its linearized copy on one split of their data and returns tidy
tables. :func:`~fairlin_core.audits.core.audit_models` runs the chosen ones in registry order, which is a
dependency order (a diagnostic's ``needs`` are registered before it), and splits its progress by ``cost``.
A new diagnostic subclasses :class:`Diagnostic` and calls :func:`register_diagnostic`; from then on
``fl.audit``, ``run_audit``, ``fairlin audit --diagnostics``, job configs and the audit grid accept its name,
its tables go to ``--json`` and the CSVs, and the Linearize form offers it when ``offered``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import nn

from ...checkpoints import Checkpoint
from ...data import Split
from ...errors import FairLinError, brief, clip
from ...metrics.accuracy import predict_logits
from ...registry import Registry
from ...runtime import CancelFlag, ProgressFn, comma_list, scaled_progress

MODELS = ("base", "lin")
GROUP_KEYS = ["group", "group_index", "n"]
ALWAYS = ("summary", "param_distance")  # what every audit holds, whatever its diagnostics


@dataclass
class AuditContext:
    """The two models of one audit and the split they are measured on, shared by that audit's diagnostics.

    base, lin: the checkpoints (same architecture, same data); data: the split (x: (N, *input_shape), y and
    group: (N,) int64); split: its name; group_names: one per group index; seed: the only source of
    randomness (bootstrap, Lanczos starts); device: where to compute (None = the default); cancel: polled
    between and inside the measurements.
    """

    base: Checkpoint
    lin: Checkpoint
    data: Split
    split: str
    group_names: list[str]
    seed: int = 0
    device: torch.device | None = None
    cancel: CancelFlag | None = None
    _measured: dict[tuple[Any, ...], Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def models(self) -> dict[str, nn.Module]:
        return {"base": self.base.model, "lin": self.lin.model}

    @cached_property
    def predictions(self) -> dict[str, np.ndarray]:
        """{model: predicted class of every sample, (N,) int64}."""
        return {name: predict_logits(model, self.data.x, device=self.device).argmax(1).numpy()
                for name, model in self.models.items()}

    def per_model(self, metric: Callable[..., Any], progress: ProgressFn | None, which: Sequence[str] = MODELS,
                  **options: Any) -> dict[str, Any]:
        """{model: metric(model, data, group_names, device=, cancel=, progress=, **options)} for the models in
        ``which``, each measured once per audit: diagnostics asking for the same metric with the same options
        share it (bound reads the base gradient norms grad measured). progress: split evenly between the
        models, messages prefixed ``"{stage} (model): "``."""
        out = {}
        for i, name in enumerate(which):
            key = (metric, tuple(sorted(options.items())), name)
            if key not in self._measured:
                self._measured[key] = metric(
                    self.models[name], self.data, self.group_names, device=self.device, cancel=self.cancel,
                    progress=scaled_progress(progress, i / len(which), (i + 1) / len(which), f"{{stage}} ({name}): "),
                    **options)
            out[name] = self._measured[key]
        return out


class Diagnostic(ABC):
    """One audit diagnostic.

    name: its name in the API, CLI and job configs (``all`` is every one). needs: diagnostics whose
    measurements it reuses (registered before it, so they run first when chosen; it measures what it
    needs itself otherwise). cost: its share of an audit's progress, relative to the others (accuracy 1).
    tables: every table it adds to an audit result, in order (each one CSV file); json_tables: those the
    CLI's ``--json`` prints; by_group: those with one row per group (group, group_index, n, ...), merged
    side by side in ``Audit.by_group`` and the CLI's text; headline: their columns the text prints
    (without the ``_base``/``_lin`` suffix). offered: the Linearize form offers it; preselected: ticked
    there by default; drawn: the Why page draws it. results: what audit results (the ``diagnostics`` table of
    :mod:`fairlin_core.audits.results`, one row per run x group x model) keep of it, ``{by_group table:
    columns}``: a column measured on both models (``loss`` for ``loss_base`` / ``loss_lin``) or, when the table
    has it without a suffix, on the linearized model only (``bound``).
    """

    name: ClassVar[str]
    needs: ClassVar[tuple[str, ...]] = ()
    cost: ClassVar[float] = 1.0
    tables: ClassVar[tuple[str, ...]]
    json_tables: ClassVar[tuple[str, ...]] = ()
    by_group: ClassVar[tuple[str, ...]] = ()
    headline: ClassVar[tuple[str, ...]] = ()
    offered: ClassVar[bool] = False
    preselected: ClassVar[bool] = False
    drawn: ClassVar[bool] = False
    results: ClassVar[dict[str, tuple[str, ...]]] = {}

    @abstractmethod
    def compute(self, audit: AuditContext, progress: ProgressFn | None) -> dict[str, pd.DataFrame]:
        """{table name: tidy DataFrame} for every name in ``tables``. progress: this diagnostic's own [0, 1]."""


DIAGNOSTICS: Registry[Diagnostic] = Registry("diagnostic", reserved=("all",))


def register_diagnostic(diagnostic: Diagnostic) -> Diagnostic:
    """Make ``diagnostic`` available under its name; returns it. FairLinError (naming every problem) if the
    name is taken or not a plain word, a need is not registered, a table is already another diagnostic's (or
    ``summary``), or its json_tables or by_group name a table it does not add."""
    taken = {table: other.name for other in DIAGNOSTICS.values() for table in other.tables}
    problems = [f"name {brief(diagnostic.name)} is not a plain word"] if not diagnostic.name.isidentifier() else []
    problems += [f"need {brief(need)} is not registered" for need in diagnostic.needs if need not in DIAGNOSTICS]
    problems += [f"table {brief(table)} is already "
                 + ("in every audit" if table in ALWAYS else f"added by {taken[table]}")
                 for table in diagnostic.tables if table in taken or table in ALWAYS]
    problems += [f"{kind} table {brief(table)} is not among its tables"
                 for kind in ("json_tables", "by_group") for table in getattr(diagnostic, kind)
                 if table not in diagnostic.tables]
    problems += [f"results table {brief(table)} is not among its by_group tables"
                 for table in diagnostic.results if table not in diagnostic.by_group]
    kept = {column: other.name for other in DIAGNOSTICS.values() for columns in other.results.values()
            for column in columns}
    problems += [f"results column {brief(column)} is already kept for {kept[column]}"
                 for columns in diagnostic.results.values() for column in columns if column in kept]
    if problems:
        raise FairLinError(f"cannot register diagnostic {brief(diagnostic.name)}: {'; '.join(problems)}")
    return DIAGNOSTICS.register(diagnostic.name, diagnostic)


def parse_diagnostics(diagnostics: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a comma-separated string or a sequence of diagnostic names (``all`` = every registered one);
    returns them in registry order."""
    names = comma_list(diagnostics) if isinstance(diagnostics, str) else [d.strip() for d in diagnostics if d.strip()]
    if names == ["all"]:
        return tuple(DIAGNOSTICS)
    unknown = [d for d in names if d not in DIAGNOSTICS]
    if unknown or not names:
        raise FairLinError(f"unknown diagnostic(s) {clip(', '.join(repr(d) for d in unknown)) or '(none given)'}; "
                           f"expected a comma-separated list of {', '.join(DIAGNOSTICS)} (or all)")
    return tuple(d for d in DIAGNOSTICS if d in names)


def side_by_side(tables: dict[str, pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """One per-group table per model -> group, group_index, n, then every column suffixed with the model
    (``loss_base``, ``loss_lin``, ...)."""
    merged = tables[MODELS[0]][GROUP_KEYS].copy()
    for model in MODELS:
        renamed = tables[model][["group_index", *columns]].rename(columns={c: f"{c}_{model}" for c in columns})
        merged = merged.merge(renamed, on="group_index", how="left", validate="one_to_one")
    return merged


def long_form(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One table per model stacked, with a leading ``model`` column."""
    return pd.concat([t.assign(model=m)[["model", *t.columns]] for m, t in tables.items()], ignore_index=True)


def result_columns() -> list[str]:
    """The value columns audit results keep, in registry order (see :attr:`Diagnostic.results`)."""
    return [column for diagnostic in DIAGNOSTICS.values() for columns in diagnostic.results.values()
            for column in columns]


def result_rows(tables: dict[str, pd.DataFrame]) -> pd.DataFrame | None:
    """One run's rows of the results' ``diagnostics`` table from its audit tables (a :func:`run_audit` result, or
    a stored run's tables by name): group, model, then every kept column present (:attr:`Diagnostic.results`);
    a column measured on the linearized model only is NaN on the base rows. None when no table of a kept column
    is there."""
    both: dict[str, list[pd.DataFrame]] = {model: [] for model in MODELS}
    lin_only = []
    for diagnostic in DIAGNOSTICS.values():
        for name, columns in diagnostic.results.items():
            if name not in tables:
                continue
            table = tables[name]
            suffixed = [c for c in columns if f"{c}_{MODELS[0]}" in table]
            for model in MODELS:
                if suffixed:
                    both[model].append(table[["group", *[f"{c}_{model}" for c in suffixed]]].rename(
                        columns={f"{c}_{model}": c for c in suffixed}))
            plain = [c for c in columns if c not in suffixed and c in table]
            if plain:
                lin_only.append(table[["group", *plain]])
    rows = [_merged(parts).assign(model=model) for model, parts in both.items() if parts]
    if lin_only:
        lin = _merged(lin_only).assign(model=MODELS[1])
        rows = [pd.concat(rows, ignore_index=True).merge(lin, on=["group", "model"], how="left")] if rows else [lin]
    if not rows:
        return None
    table = pd.concat(rows, ignore_index=True)
    return table[["group", "model", *[c for c in table.columns if c not in ("group", "model")]]]


def _merged(parts: list[pd.DataFrame]) -> pd.DataFrame:
    merged = parts[0]
    for part in parts[1:]:
        merged = merged.merge(part, on="group")
    return merged
