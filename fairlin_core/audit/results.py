"""Audit results: the tidy tables of many linearization runs of one base checkpoint.

One :class:`AuditResults` holds, whatever produced it (the shipped default audit built by
:mod:`fairlin_core.audit_grid`, or the finished runs of a run store via :func:`collect_from_store`):

- ``runs``: one row per run: run_id, method, budget (as requested, text), budget_fraction (of the base
  ReLUs, requested), relu_count, base_relu_count, seed, mitigation ("off"/"on"), mu (NaN when off),
  configuration (the linearizer's, JSON text), param_distance (||theta_lin - theta_base||, NaN when
  not measured).
- ``groups``: one row per run x split x group: run_id, split, group, n, base_accuracy, accuracy and
  relative_drop (``(base - lin) / base * 100``, percent); accuracies are fractions.
- ``diagnostics``: one row per run x group x model ("base"/"lin"): loss, grad_norm, top_eigenvalue,
  softmax_margin_mean, input_margin_mean, and on the "lin" rows the Theorem 4.4 ``bound`` next to
  the measured ``excess_loss`` (NaN where a diagnostic was not run).
- ``density``: run_id, group, model, eigenvalue, density (Hessian spectral density on a grid).
- ``attributions``: run_id, group, model, method (saliency / integrated_gradients), element (flat
  input index), value (mean |attribution| over the group's test examples).
- ``group_sizes``: split, group, n (from the dataset, every split incl. train).
- ``configs``: run_id -> the run's full configuration (JSON-ready dict); ``meta``: checkpoint,
  dataset, group_attribute, group_names (the order every chart uses), base_relu_count, how it was made.

``save(folder)`` writes one CSV per table plus ``configs.json`` and ``meta.json``; :func:`load_results`
reads them back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import FairLinError
from ..runtime import json_ready

TABLES = ("runs", "groups", "diagnostics", "density", "attributions", "group_sizes")
COLUMNS = {
    "runs": ["run_id", "method", "budget", "budget_fraction", "relu_count", "base_relu_count", "seed", "mitigation",
             "mu", "configuration", "param_distance"],
    "groups": ["run_id", "split", "group", "n", "base_accuracy", "accuracy", "relative_drop"],
    "diagnostics": ["run_id", "group", "model", "loss", "grad_norm", "top_eigenvalue", "softmax_margin_mean",
                    "input_margin_mean", "bound", "excess_loss"],
    "density": ["run_id", "group", "model", "eigenvalue", "density"],
    "attributions": ["run_id", "group", "model", "method", "element", "value"],
    "group_sizes": ["split", "group", "n"],
}
TEXT_COLUMNS = {"run_id": str, "group": str, "budget": str, "method": str, "mitigation": str, "model": str,
                "split": str, "configuration": str}


@dataclass
class AuditResults:
    """The tables described in the module docstring (every table present, possibly empty)."""

    runs: pd.DataFrame
    groups: pd.DataFrame
    diagnostics: pd.DataFrame
    density: pd.DataFrame
    attributions: pd.DataFrame
    group_sizes: pd.DataFrame
    configs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame], *, group_sizes: pd.DataFrame,
                    configs: dict[str, Any], meta: dict[str, Any]) -> AuditResults:
        """Fill absent tables with empty ones and put every table's columns in their documented order."""
        tables = {**tables, "group_sizes": group_sizes}
        return cls(**{name: _shaped(tables.get(name), name) for name in TABLES}, configs=configs, meta=meta)

    @property
    def group_names(self) -> list[str]:
        """Group names in the dataset's order (the order and colours of every chart)."""
        names = self.meta.get("group_names")
        return [str(n) for n in names] if names else list(dict.fromkeys(self.groups["group"]))

    def save(self, folder: str | Path) -> list[Path]:
        """Write every table as ``NAME.csv`` plus configs.json and meta.json; returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in TABLES:
            path = folder / f"{name}.csv"
            getattr(self, name).to_csv(path, index=False, float_format="%.7g")
            paths.append(path)
        for name, data in (("configs", self.configs), ("meta", self.meta)):
            path = folder / f"{name}.json"
            path.write_text(json.dumps(json_ready(data), indent=1, sort_keys=True, allow_nan=False) + "\n")
            paths.append(path)
        return paths


def load_results(folder: str | Path) -> AuditResults:
    """Read a folder written by :meth:`AuditResults.save`; FairLinError naming what is missing or broken."""
    folder = Path(folder)
    missing = [f"{n}.csv" for n in TABLES if not (folder / f"{n}.csv").is_file()]
    missing += [f"{n}.json" for n in ("configs", "meta") if not (folder / f"{n}.json").is_file()]
    if missing:
        raise FairLinError(f"{folder} is not an audit results folder: {', '.join(missing)} missing; expected the "
                           f"files written by `python -m fairlin_core default-audit`")
    try:
        tables = {name: pd.read_csv(folder / f"{name}.csv", dtype={c: t for c, t in TEXT_COLUMNS.items()
                                                                    if c in COLUMNS[name]})
                  for name in TABLES}
        configs = json.loads((folder / "configs.json").read_text())
        meta = json.loads((folder / "meta.json").read_text())
    except (ValueError, pd.errors.ParserError) as error:
        raise FairLinError(f"{folder} holds a damaged audit results file ({error}); regenerate it with "
                           f"`python -m fairlin_core default-audit`") from None
    group_sizes = tables.pop("group_sizes")
    return AuditResults.from_tables(tables, group_sizes=group_sizes, configs=configs, meta=meta)


def _shaped(table: pd.DataFrame | None, name: str) -> pd.DataFrame:
    columns = COLUMNS[name]
    if table is None or table.empty:
        return pd.DataFrame({c: pd.Series(dtype=TEXT_COLUMNS.get(c, float)) for c in columns})
    table = table.copy()
    for column in columns:
        if column not in table:
            table[column] = float("nan")
    for column, kind in TEXT_COLUMNS.items():
        if column in table:
            table[column] = table[column].astype(kind)
    return table[columns].reset_index(drop=True)


# -- building rows from one run ---------------------------------------------------------------------

def budget_fraction(budget: Any, base_count: int) -> float:
    """A requested budget (count, fraction or "x%") as a fraction of the base ReLU count."""
    from ..linearize import resolve_budget
    if isinstance(budget, str) and budget.strip().endswith("%"):
        return float(budget.strip()[:-1]) / 100.0
    if isinstance(budget, float) or (isinstance(budget, str) and "." in budget):
        return float(budget)
    return resolve_budget(budget, base_count) / base_count


def run_groups(run_id: str, evaluations: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """``groups`` rows of one run from a result's evaluations ({"base"|"finetuned": {split: evaluation}})."""
    rows = []
    for split, evaluation in evaluations["finetuned"].items():
        base = {g["group"]: g["accuracy"] for g in evaluations["base"][split]["groups"]}
        for group in evaluation["groups"]:
            rows.append({"run_id": run_id, "split": split, "group": str(group["group"]), "n": group["n"],
                         "base_accuracy": base[group["group"]], "accuracy": group["accuracy"]})
    return with_relative_drop(pd.DataFrame(rows))


def with_relative_drop(groups: pd.DataFrame) -> pd.DataFrame:
    """Add relative_drop = (base_accuracy - accuracy) / base_accuracy * 100 (NaN where the base is 0)."""
    base = groups["base_accuracy"].where(groups["base_accuracy"] > 0)
    return groups.assign(relative_drop=(base - groups["accuracy"]) / base * 100)


def audit_rows(run_id: str, audit: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``diagnostics``, ``density`` and ``attributions`` rows of one run from a :func:`run_audit` result
    (or the ``audit:<name>`` tables of a stored run, keyed by name without the prefix)."""
    per_model = []
    for model in ("base", "lin"):
        table = None
        for name, columns in (("grad_norms", ["loss", "grad_norm"]), ("hessian", ["top_eigenvalue"]),
                              ("boundary", ["softmax_margin_mean", "input_margin_mean"])):
            if name not in audit:
                continue
            part = audit[name][["group", *[f"{c}_{model}" for c in columns]]]
            part = part.rename(columns={f"{c}_{model}": c for c in columns})
            table = part if table is None else table.merge(part, on="group")
        if table is not None:
            per_model.append(table.assign(model=model))
    out: dict[str, pd.DataFrame] = {}
    if per_model:
        diagnostics = pd.concat(per_model, ignore_index=True)
        if "bound" in audit:
            bound = audit["bound"][["group", "bound", "excess_loss"]].assign(model="lin")
            diagnostics = diagnostics.merge(bound, on=["group", "model"], how="left")
        out["diagnostics"] = diagnostics.assign(run_id=run_id, group=diagnostics["group"].astype(str))
    if "density" in audit:
        out["density"] = audit["density"][["group", "model", "eigenvalue", "density"]].assign(run_id=run_id)
    if "attr" in audit:
        out["attributions"] = audit["attr"][["group", "model", "method", "element", "value"]].assign(run_id=run_id)
    for name in ("density", "attributions"):
        if name in out:
            out[name]["group"] = out[name]["group"].astype(str)
    return out


# -- the runs of a run store --------------------------------------------------------------------------

def budget_label(fraction: float) -> str:
    """A budget fraction as the percent label the pages use (0.1 -> "10%", 0.005 -> "0.5%")."""
    return f"{100 * fraction:.3g}%"


def collect_from_store(store: Any, checkpoint: str | Path, *, group: str | None = None,
                       data_root: str | Path | None = None) -> AuditResults:
    """The done runs of ``store`` (a :class:`~fairlin_core.jobs.RunStore`) linearizing ``checkpoint``, as
    :class:`AuditResults`. ``group``: keep only runs grouped by this attribute (None = the checkpoint's).

    Budgets are relabelled as percentages of the base ReLU count, so runs asked for as counts and as
    fractions line up; runs whose artifacts are damaged are left out.
    """
    from ..checkpoints import load_dataset_for, read_sidecar
    path = Path(checkpoint).resolve()
    sidecar = read_sidecar(path)
    own = sidecar.get("dataset") or {}
    wanted = group or own.get("group")
    tables: dict[str, list[pd.DataFrame]] = {}
    runs, configs = [], {}
    for record in store.list_runs("done"):
        config = record["config"]
        run_group = (config.get("dataset") or {}).get("group") or own.get("group")
        if config.get("checkpoint") != str(path) or run_group != wanted:  # train-base runs have no checkpoint
            continue
        run = store.get_run(record["id"])
        if run.status != "done":
            continue
        summary = run.summary
        base_count = int(summary["base_relu_count"])
        fraction = budget_fraction(config["budget"], base_count)
        audit = {name.split(":", 1)[1]: table for name, table in run.tables.items() if name.startswith("audit:")}
        distance = float("nan")
        if "summary" in audit:
            distance = float(audit["summary"]["param_distance"].iloc[0])
        mitigation = config.get("mitigation")
        runs.append({"run_id": run.id, "method": config["method"], "budget": budget_label(fraction),
                     "budget_fraction": fraction, "relu_count": summary["relu_count"], "base_relu_count": base_count,
                     "seed": config["seed"], "mitigation": "on" if mitigation else "off",
                     "mu": mitigation["mu"] if mitigation else float("nan"),
                     "configuration": json.dumps(summary.get("configuration", {}), sort_keys=True),
                     "param_distance": distance})
        groups = run.tables["groups"].astype({"group": str}).assign(run_id=run.id)
        tables.setdefault("groups", []).append(with_relative_drop(groups))
        for name, table in audit_rows(run.id, {k: v.astype({"group": str}) if "group" in v else v
                                               for k, v in audit.items()}).items():
            tables.setdefault(name, []).append(table)
        configs[run.id] = config
    tables = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
    tables["runs"] = pd.DataFrame(runs)
    bundle = load_dataset_for(sidecar, data_root, group=wanted)
    meta = {"checkpoint": path.name, "dataset": bundle.name, "group_attribute": bundle.group_attribute,
            "group_names": list(bundle.group_names),
            "base_relu_count": sidecar.get("relu_count"),
            "input_shape": (sidecar.get("model") or {}).get("input_shape"),
            "source": f"run store {store.root}"}
    return AuditResults.from_tables(tables, group_sizes=bundle.group_sizes()[["split", "group", "n"]],
                                    configs=configs, meta=meta)
