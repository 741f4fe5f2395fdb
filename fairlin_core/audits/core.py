"""Audit a linearized model against its base model: the paper's per-group diagnostics in one call.

``run_audit(base, linearized, diagnostics=...)`` loads both checkpoints (same architecture, same
dataset), evaluates them on one split of that dataset and returns tidy tables, one row per group
(``*_samples`` tables: one row per sample and model; ``attr``/``density``: long form with a model
column). Diagnostics, cheapest first (``accuracy`` is the default, the rest are opt-in):

- ``accuracy``: per-group accuracy of both models and the relative drop, with paired bootstrap intervals.
- ``grad``: group gradient norms and mean losses of both models (+ per-sample gradient norms).
- ``hessian``: top Hessian eigenvalue of every group's loss for both models (Lanczos).
- ``boundary``: mean and median distance to the decision boundary (+ per-sample distances).
- ``bound``: Theorem 4.4, ``||g_a|| d + 1/2 lambda_max(H_a) d^2`` at the base model vs the excess loss.
- ``attr``: mean |attribution| maps per group (saliency, integrated gradients) for both models.
- ``density``: Hessian eigenvalue density per group by stochastic Lanczos quadrature, both models.

Always present: ``summary`` (one row per model: relu_count, overall and worst-group accuracy, parity
gap, param_distance) and ``param_distance`` (||theta_lin - theta_base|| over the weights).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..checkpoints import Checkpoint, load_checkpoint
from ..data import DatasetBundle
from ..errors import DatasetError, FairLinError, brief, check_seed, clip
from ..metrics.accuracy import group_accuracy, predict_logits
from ..metrics.bound import parameter_distance, theorem_bound
from ..metrics.boundary import boundary_distances, boundary_summary
from ..metrics.fairness import bootstrap_accuracy_drop, parity_gap, worst_group_accuracy
from ..metrics.gradients import group_gradient_norms, per_sample_gradient_norms, weight_parameters
from ..metrics.hessian import group_hessian_density, group_hessian_eigenvalues
from ..models import relu_count
from ..runtime import CancelFlag, ProgressFn, check_cancel, comma_list, json_records, report, scaled_progress

DIAGNOSTICS = ("accuracy", "grad", "hessian", "boundary", "bound", "attr", "density")
JSON_TABLES = ("accuracy", "grad_norms", "hessian", "boundary", "bound", "attr", "density")
MODELS = ("base", "lin")
GROUP_KEYS = ["group", "group_index", "n"]
PER_GROUP_TABLES = ("accuracy", "grad_norms", "hessian", "boundary", "bound")
TEXT_COLUMNS = {"accuracy", "relative_drop", "grad_norm", "top_eigenvalue", "softmax_margin_mean", "input_margin_mean",
                "bound", "excess_loss", "holds"}


def parse_diagnostics(diagnostics: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a comma-separated string or a sequence of diagnostic names (``all`` = every one)."""
    names = comma_list(diagnostics) if isinstance(diagnostics, str) else [d.strip() for d in diagnostics if d.strip()]
    if names == ["all"]:
        return DIAGNOSTICS
    unknown = [d for d in names if d not in DIAGNOSTICS]
    if unknown or not names:
        raise FairLinError(f"unknown diagnostic(s) {clip(', '.join(repr(d) for d in unknown)) or '(none given)'}; "
                           f"expected a comma-separated list of {', '.join(DIAGNOSTICS)} (or all)")
    return tuple(d for d in DIAGNOSTICS if d in names)


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


def _side_by_side(tables: dict[str, pd.DataFrame], columns: Sequence[str]) -> pd.DataFrame:
    """group, group_index, n, then every column suffixed with the model (``loss_base``, ``loss_lin``, ...)."""
    merged = tables[MODELS[0]][GROUP_KEYS].copy()
    for model in MODELS:
        renamed = tables[model][["group_index", *columns]].rename(columns={c: f"{c}_{model}" for c in columns})
        merged = merged.merge(renamed, on="group_index", how="left", validate="one_to_one")
    return merged


def _long(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Stack one table per model with a leading ``model`` column."""
    return pd.concat([t.assign(model=m)[["model", *t.columns]] for m, t in tables.items()], ignore_index=True)


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


def audit_models(base: Checkpoint, linearized: Checkpoint, bundle: DatasetBundle, *, split: str = "test",
                 diagnostics: str | Sequence[str] = ("accuracy",), seed: int = 0, device: torch.device | None = None,
                 progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> dict[str, Any]:
    """Run the requested diagnostics on two models in memory; returns {table name: DataFrame, ...,
    "param_distance": float}.

    base, linearized: the same architecture trained on the same data (checked); bundle: that data.
    Tables per diagnostic: accuracy -> ``accuracy``; grad -> ``grad_norms``, ``grad_samples``;
    hessian -> ``hessian``; boundary -> ``boundary``, ``boundary_samples``; bound -> ``bound``;
    attr -> ``attr``; density -> ``density``, ``density_nodes``; always ``summary``.
    ``seed`` drives the bootstrap and the random Lanczos starts.
    """
    chosen = parse_diagnostics(diagnostics)
    seed = check_seed(seed)
    _check_pair(base, linearized)
    if split not in bundle.splits:
        raise DatasetError(f"dataset {bundle.name} has no split {brief(split)}; expected one of {', '.join(bundle.splits)}")
    data, names = bundle.splits[split], bundle.group_names
    models = {"base": base.model, "lin": linearized.model}
    result: dict[str, Any] = {"param_distance": parameter_distance(base.model, linearized.model)}
    kept: dict[str, dict[str, Any]] = {}
    common = {"device": device, "cancel": cancel}

    def per_model(key: str, compute: Callable[..., Any], which: Sequence[str] = MODELS
                  ) -> Callable[[ProgressFn | None], None]:
        def task(task_progress: ProgressFn | None) -> None:
            kept[key] = {}
            for i, name in enumerate(which):
                kept[key][name] = compute(models[name], progress=scaled_progress(task_progress, i / len(which), (i + 1) / len(which),
                                                                                 f"{{stage}} ({name}): "))
        return task

    def predictions(_: ProgressFn | None) -> None:
        preds = {m: predict_logits(model, data.x, device=device).argmax(1).numpy() for m, model in models.items()}
        y, groups = data.y.numpy(), data.group.numpy()
        rows = []
        for model_name, checkpoint in (("base", base), ("lin", linearized)):
            table = group_accuracy(y, preds[model_name], groups, names)
            rows.append({"model": model_name, "checkpoint": checkpoint.label,
                         "relu_count": relu_count(checkpoint.model),
                         "overall_accuracy": float((preds[model_name] == y).mean()) if len(y) else float("nan"),
                         "worst_group_accuracy": worst_group_accuracy(table), "parity_gap": parity_gap(table),
                         "param_distance": result["param_distance"]})
        result["summary"] = pd.DataFrame(rows)
        if "accuracy" in chosen:
            result["accuracy"] = bootstrap_accuracy_drop(y, preds["base"], preds["lin"], groups, names, seed=seed)

    def bound(task_progress: ProgressFn | None) -> None:
        result["bound"] = theorem_bound(base.model, linearized.model, data, names, grad_norms=kept["grad"]["base"],
                                        eigenvalues=kept["hessian"]["base"], seed=seed,
                                        progress=scaled_progress(task_progress, 0, 1, "{stage} (base): "), **common)

    tasks: list[tuple[float, Callable[[ProgressFn | None], None]]] = [(1, predictions)]
    if "grad" in chosen or "bound" in chosen:
        tasks.append((2, per_model("grad", lambda m, **kw: group_gradient_norms(m, data, names, **common, **kw),
                                   MODELS if "grad" in chosen else ("base",))))
    if "grad" in chosen:
        tasks.append((4, per_model("grad_samples",
                                   lambda m, **kw: per_sample_gradient_norms(m, data, names, **common, **kw))))
    if "hessian" in chosen or "bound" in chosen:
        tasks.append((8, per_model("hessian", lambda m, **kw: group_hessian_eigenvalues(
            m, data, names, seed=seed, **common, **kw), MODELS if "hessian" in chosen else ("base",))))
    if "boundary" in chosen:
        tasks.append((1, per_model("boundary", lambda m, **kw: boundary_distances(m, data, names, **common, **kw))))
    if "attr" in chosen:
        from ..metrics.attributions import group_attributions  # captum takes seconds to import; only when asked
        tasks.append((4, per_model("attr", lambda m, **kw: group_attributions(m, data, names, **common, **kw))))
    if "density" in chosen:
        tasks.append((16, per_model("density", lambda m, **kw: group_hessian_density(
            m, data, names, seed=seed, **common, **kw))))
    if "bound" in chosen:
        tasks.append((1, bound))

    total, done = sum(w for w, _ in tasks), 0.0
    for weight, task in tasks:
        check_cancel(cancel)
        task(scaled_progress(progress, done / total, (done + weight) / total))
        done += weight
    report(progress, 1.0, "audit", "done")

    if "grad" in chosen:
        result["grad_norms"] = _side_by_side(kept["grad"], ["loss", "grad_norm"])
        result["grad_samples"] = _long(kept["grad_samples"])
    if "hessian" in chosen:
        tops = {m: t[t["rank"] == 1].rename(columns={"eigenvalue": "top_eigenvalue"})
                for m, t in kept["hessian"].items()}
        result["hessian"] = _side_by_side(tops, ["top_eigenvalue", "error_bound"])
    if "boundary" in chosen:
        summaries = {m: boundary_summary(t, names) for m, t in kept["boundary"].items()}
        result["boundary"] = _side_by_side(summaries, ["softmax_margin_mean", "softmax_margin_median",
                                                       "input_margin_mean", "input_margin_median"])
        result["boundary_samples"] = _long(kept["boundary"])
    if "attr" in chosen:
        result["attr"] = _long(kept["attr"])
    if "density" in chosen:
        result["density"] = _long({m: pair[0] for m, pair in kept["density"].items()})
        result["density_nodes"] = _long({m: pair[1] for m, pair in kept["density"].items()})
    return result


def audit_to_json(result: dict[str, Any]) -> dict[str, Any]:
    """The CLI's ``--json`` contract: ``{"accuracy": [rows], "grad_norms": [rows], "hessian": [rows],
    "boundary": [rows], "bound": [rows], "param_distance": float}`` with only the requested tables
    (``attr`` and ``density`` rows too when requested); every row has a ``group`` field."""
    out: dict[str, Any] = {name: json_records(result[name]) for name in JSON_TABLES if name in result}
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
    """The per-group tables of ``result`` side by side: group, group_index, n, then every column of
    accuracy, grad_norms, hessian, boundary and bound that was computed (``columns``: only these base
    names, with or without their ``_base``/``_lin`` suffix). Empty when no per-group table was computed."""
    merged = None
    for name in PER_GROUP_TABLES:
        if name not in result:
            continue
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

    data: the base checkpoint's own dataset when None; diagnostics: any of accuracy, grad, hessian,
    boundary, bound, attr, density (or "all"); seed drives the bootstrap intervals and the Lanczos
    starts. Returns an :class:`Audit` (``by_group``, ``summary()``, ``save(folder)``: the files
    ``fairlin audit --out`` writes).
    """
    chosen = parse_diagnostics(diagnostics)
    result = audit_models(base, linearized, base.resolve_data(data), split=split, diagnostics=chosen, seed=seed,
                          device=device, progress=progress, cancel=cancel)
    return Audit.from_result(result, split, chosen)
