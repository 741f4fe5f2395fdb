"""Audit a linearized model against its base model: the paper's per-group diagnostics in one call.

``run_audit(base, linearized, diagnostics=...)`` loads both checkpoints (same architecture, same
dataset), evaluates them on one split of that dataset and returns tidy tables, one row per group
(``*_samples`` tables: one row per sample and model; ``attr``/``density``: long form with a model
column). The diagnostics are the registered ones (:mod:`.diagnostics`: accuracy, grad, hessian,
boundary, bound, attr, density; ``accuracy`` is the default, the rest are opt-in), each adding its own tables.

Always present: ``summary`` (one row per model: relu_count, overall and worst-group accuracy, parity
gap, param_distance) and ``param_distance`` (||theta_lin - theta_base|| over the weights).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..checkpoints import Checkpoint, load_checkpoint
from ..data import DatasetBundle
from ..errors import DatasetError, FairLinError, brief, check_seed
from ..metrics.accuracy import group_accuracy
from ..metrics.bound import parameter_distance
from ..metrics.fairness import parity_gap, worst_group_accuracy
from ..metrics.gradients import weight_parameters
from ..models import relu_count
from ..runtime import CancelFlag, ProgressFn, check_cancel, json_records, report, scaled_progress
from .diagnostics import DIAGNOSTICS, GROUP_KEYS, AuditContext, parse_diagnostics


def _check_pair(base: Checkpoint, linearized: Checkpoint) -> None:
    """Same architecture (model, classes, input shape, weight names and shapes) and the same dataset."""
    a, b = base.spec, linearized.spec
    shapes_a = {n: tuple(p.shape) for n, p in weight_parameters(base.model)}
    shapes_b = {n: tuple(p.shape) for n, p in weight_parameters(linearized.model)}
    if (a.name, a.num_classes, a.input_shape) != (b.name, b.num_classes, b.input_shape) or shapes_a != shapes_b:
        raise FairLinError(f"{linearized.label} ({b.name}, {b.num_classes} classes, input {b.input_shape}, options "
                           f"{b.options}) does not share the architecture of {base.label} ({a.name}, {a.num_classes} "
                           f"classes, input {a.input_shape}, options {a.options}); expected a linearized copy of "
                           f"the base model")
    keys = ("name", "target", "group", "options")
    data_a, data_b = (c.sidecar.get("dataset") or {} for c in (base, linearized))
    if {k: data_a.get(k) for k in keys} != {k: data_b.get(k) for k in keys}:
        raise FairLinError(f"{linearized.label} was trained on dataset {brief(data_b.get('name'))} with options "
                           f"{data_b.get('options')} but {base.label} on {brief(data_a.get('name'))} with options "
                           f"{data_a.get('options')}; expected both on the same data")


def run_audit(base_path: str | Path, linearized_path: str | Path, *, split: str = "test",
              diagnostics: str | Sequence[str] = ("accuracy",), seed: int = 0, data_root: str | Path | None = None,
              device: torch.device | None = None, progress: ProgressFn | None = None,
              cancel: CancelFlag | None = None) -> dict[str, Any]:
    """:func:`audit_models` on two checkpoint files and the base checkpoint's own dataset."""
    chosen = parse_diagnostics(diagnostics)  # refuse bad names before loading anything
    check_seed(seed)
    base, linearized = load_checkpoint(base_path), load_checkpoint(linearized_path)
    return audit_models(base, linearized, base.dataset(data_root), split=split, diagnostics=chosen, seed=seed,
                        device=device, progress=progress, cancel=cancel)


def _summary(audit: AuditContext, distance: float) -> pd.DataFrame:
    """One row per model: model, checkpoint, relu_count, overall_accuracy, worst_group_accuracy, parity_gap
    (fractions), param_distance."""
    y, groups = audit.data.y.numpy(), audit.data.group.numpy()
    rows = []
    for name, checkpoint in (("base", audit.base), ("lin", audit.lin)):
        predicted = audit.predictions[name]
        table = group_accuracy(y, predicted, groups, audit.group_names)
        rows.append({"model": name, "checkpoint": checkpoint.label, "relu_count": relu_count(checkpoint.model),
                     "overall_accuracy": float((predicted == y).mean()) if len(y) else float("nan"),
                     "worst_group_accuracy": worst_group_accuracy(table), "parity_gap": parity_gap(table),
                     "param_distance": distance})
    return pd.DataFrame(rows)


def audit_models(base: Checkpoint, linearized: Checkpoint, bundle: DatasetBundle, *, split: str = "test",
                 diagnostics: str | Sequence[str] = ("accuracy",), seed: int = 0, device: torch.device | None = None,
                 progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> dict[str, Any]:
    """Run the requested diagnostics on two models in memory; returns {table name: DataFrame, ...,
    "param_distance": float}.

    base, linearized: the same architecture trained on the same data (checked); bundle: that data.
    Tables: ``summary``, then each chosen diagnostic's ``tables`` (accuracy -> ``accuracy``; grad ->
    ``grad_norms``, ``grad_samples``; ...), in registry order. ``seed`` drives the bootstrap and the random
    Lanczos starts; progress is split between the diagnostics by their ``cost``.
    """
    chosen = [DIAGNOSTICS[name] for name in parse_diagnostics(diagnostics)]
    seed = check_seed(seed)
    _check_pair(base, linearized)
    if split not in bundle.splits:
        raise DatasetError(f"dataset {bundle.name} has no split {brief(split)}; expected one of {', '.join(bundle.splits)}")
    audit = AuditContext(base, linearized, bundle.splits[split], split, bundle.group_names, seed=seed, device=device,
                         cancel=cancel)
    distance = parameter_distance(base.model, linearized.model)
    check_cancel(cancel)
    result: dict[str, Any] = {"param_distance": distance, "summary": _summary(audit, distance)}
    total, done = sum(d.cost for d in chosen), 0.0
    for diagnostic in chosen:  # registry order: whatever a diagnostic needs ran before it
        check_cancel(cancel)
        tables = diagnostic.compute(audit, scaled_progress(progress, done / total, (done + diagnostic.cost) / total))
        result.update((name, tables[name]) for name in diagnostic.tables)
        done += diagnostic.cost
    report(progress, 1.0, "audit", "done")
    return result


def audit_to_json(result: dict[str, Any]) -> dict[str, Any]:
    """The CLI's ``--json`` contract: ``{"accuracy": [rows], "grad_norms": [rows], "hessian": [rows],
    "boundary": [rows], "bound": [rows], "param_distance": float}`` with only the requested tables
    (every diagnostic's ``json_tables``, in registry order: ``attr`` and ``density`` rows too when
    requested); every row has a ``group`` field."""
    out: dict[str, Any] = {name: json_records(result[name]) for diagnostic in DIAGNOSTICS.values()
                           for name in diagnostic.json_tables if name in result}
    out["param_distance"] = float(result["param_distance"])
    return out


def write_audit_csvs(result: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write every table of an audit result as ``out_dir/NAME.csv``; returns the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, table in result.items():
        if isinstance(table, pd.DataFrame):
            path = out_dir / f"{name}.csv"
            table.to_csv(path, index=False)
            paths.append(path)
    return paths


def per_group_table(result: dict[str, Any], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The per-group tables of ``result`` side by side: group, group_index, n, then every column of the
    diagnostics' ``by_group`` tables that were computed (accuracy, grad_norms, hessian, boundary, bound, ...;
    ``columns``: only these base names, with or without their ``_base``/``_lin`` suffix). Empty when no
    per-group table was computed."""
    merged = None
    for name in (n for diagnostic in DIAGNOSTICS.values() for n in diagnostic.by_group if n in result):
        table = result[name]
        keep = [c for c in table.columns if c not in GROUP_KEYS and (
            columns is None or c in columns or (c.endswith(("_base", "_lin")) and c.rsplit("_", 1)[0] in columns))]
        keep = [c for c in keep if merged is None or c not in merged.columns]
        merged = (table[GROUP_KEYS + keep] if merged is None
                  else merged.merge(table[["group_index", *keep]], on="group_index", validate="one_to_one"))
    return merged if merged is not None else pd.DataFrame(columns=GROUP_KEYS)


@dataclass
class Audit:
    """One audit of a linearized model against its base model, disaggregated by group (one object, tidy
    tables, like fairlearn's ``MetricFrame``).

    tables: every table of :func:`audit_models` by name (``accuracy``, ``grad_norms``, ``summary``, ...);
    param_distance: ||theta_lin - theta_base|| over the weights; split: the split evaluated;
    diagnostics: the diagnostics computed. Accuracies are fractions, relative drops percent of the base.
    """

    tables: dict[str, pd.DataFrame]
    param_distance: float
    split: str
    diagnostics: tuple[str, ...]

    @classmethod
    def from_result(cls, result: dict[str, Any], split: str, diagnostics: Sequence[str]) -> "Audit":
        tables = {name: table for name, table in result.items() if isinstance(table, pd.DataFrame)}
        return cls(tables, float(result["param_distance"]), split, parse_diagnostics(diagnostics))

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]

    @property
    def by_group(self) -> pd.DataFrame:
        """One row per group: group, group_index, n and every per-group column computed (e.g.
        accuracy_base, accuracy_lin, relative_drop with bootstrap intervals, grad_norm_base, ...)."""
        return per_group_table(self.tables)

    def summary(self) -> pd.DataFrame:
        """One row per model (base, lin): checkpoint, relu_count, overall_accuracy, worst_group_accuracy,
        parity_gap (fractions), param_distance, and for ``lin`` the relative drops (percent of the base):
        overall_relative_drop, worst_group_relative_drop and the largest group drop with its group."""
        summary = self.tables["summary"].copy()
        base = summary.set_index("model").loc["base"]
        summary["overall_relative_drop"] = (base["overall_accuracy"] - summary["overall_accuracy"]) \
            / base["overall_accuracy"] * 100.0
        summary["worst_group_relative_drop"] = (base["worst_group_accuracy"] - summary["worst_group_accuracy"]) \
            / base["worst_group_accuracy"] * 100.0
        if "accuracy" in self.tables and self.tables["accuracy"]["relative_drop"].notna().any():
            drops = self.tables["accuracy"]
            largest = drops.loc[drops["relative_drop"].idxmax()]
            summary["largest_group_drop"] = [0.0 if m == "base" else float(largest["relative_drop"])
                                             for m in summary["model"]]
            summary["largest_drop_group"] = [None if m == "base" else largest["group"] for m in summary["model"]]
        return summary

    def to_json(self) -> dict[str, Any]:
        """The CLI's ``audit --json`` shape (see :func:`audit_to_json`)."""
        return audit_to_json({**self.tables, "param_distance": self.param_distance})

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write every table as ``out_dir/NAME.csv``, the files ``fairlin audit --out`` writes; returns the paths."""
        return write_audit_csvs(self.tables, out_dir)


def audit(base: Checkpoint, linearized: Checkpoint, *, data: DatasetBundle | None = None, split: str = "test",
          diagnostics: str | Sequence[str] = ("accuracy",), seed: int = 0, device: torch.device | None = None,
          progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> Audit:
    """Per-group diagnostics of ``linearized`` against ``base`` on one split, in memory (``fl.audit``).

    data: the base checkpoint's own dataset when None; diagnostics: any registered names (accuracy, grad,
    hessian, boundary, bound, attr, density, ...; or "all"); seed drives the bootstrap intervals and the Lanczos
    starts. Returns an :class:`Audit` (``by_group``, ``summary()``, ``save(folder)``: the files
    ``fairlin audit --out`` writes).
    """
    chosen = parse_diagnostics(diagnostics)
    result = audit_models(base, linearized, base.resolve_data(data), split=split, diagnostics=chosen, seed=seed,
                          device=device, progress=progress, cancel=cancel)
    return Audit.from_result(result, split, chosen)
