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

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..checkpoints import Checkpoint, load_checkpoint, load_dataset_for
from ..errors import DatasetError, FairLinError
from ..metrics.accuracy import group_accuracy, predict_logits
from ..metrics.bound import parameter_distance, theorem_bound
from ..metrics.boundary import boundary_distances, boundary_summary
from ..metrics.fairness import bootstrap_accuracy_drop, parity_gap, worst_group_accuracy
from ..metrics.gradients import group_gradient_norms, per_sample_gradient_norms, weight_parameters
from ..metrics.hessian import group_hessian_density, group_hessian_eigenvalues
from ..models import relu_count
from ..runtime import CancelFlag, Progress, ProgressFn, check_cancel, report, scaled_progress

DIAGNOSTICS = ("accuracy", "grad", "hessian", "boundary", "bound", "attr", "density")
JSON_TABLES = ("accuracy", "grad_norms", "hessian", "boundary", "bound", "attr", "density")
MODELS = ("base", "lin")
GROUP_KEYS = ["group", "group_index", "n"]
TEXT_COLUMNS = {"accuracy", "relative_drop", "grad_norm", "top_eigenvalue", "softmax_margin_mean", "input_margin_mean",
                "bound", "excess_loss", "holds"}


def parse_diagnostics(diagnostics: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a comma-separated string or a sequence of diagnostic names (``all`` = every one)."""
    names = [d.strip() for d in (diagnostics.split(",") if isinstance(diagnostics, str) else diagnostics)]
    names = [d for d in names if d]
    if names == ["all"]:
        return DIAGNOSTICS
    unknown = [d for d in names if d not in DIAGNOSTICS]
    if unknown or not names:
        raise FairLinError(f"unknown diagnostic(s) {', '.join(repr(d) for d in unknown) or '(none given)'}; "
                           f"expected a comma-separated list of {', '.join(DIAGNOSTICS)} (or all)")
    return tuple(d for d in DIAGNOSTICS if d in names)


def _check_pair(base: Checkpoint, linearized: Checkpoint) -> None:
    """Same architecture (model, classes, input shape, weight names and shapes) and the same dataset."""
    a, b = base.spec, linearized.spec
    shapes_a = {n: tuple(p.shape) for n, p in weight_parameters(base.model)}
    shapes_b = {n: tuple(p.shape) for n, p in weight_parameters(linearized.model)}
    if (a.name, a.num_classes, a.input_shape) != (b.name, b.num_classes, b.input_shape) or shapes_a != shapes_b:
        raise FairLinError(f"{linearized.path} ({b.name}, {b.num_classes} classes, input {b.input_shape}, options "
                           f"{b.options}) does not share the architecture of {base.path} ({a.name}, {a.num_classes} "
                           f"classes, input {a.input_shape}, options {a.options}); expected a linearized copy of "
                           f"the base model")
    keys = ("name", "target", "group", "options")
    data_a, data_b = (c.sidecar.get("dataset") or {} for c in (base, linearized))
    if {k: data_a.get(k) for k in keys} != {k: data_b.get(k) for k in keys}:
        raise FairLinError(f"{linearized.path} was trained on dataset {data_b.get('name')!r} with options "
                           f"{data_b.get('options')} but {base.path} on {data_a.get('name')!r} with options "
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
    """Run the requested diagnostics; returns {table name: DataFrame, ..., "param_distance": float}.

    Tables per diagnostic: accuracy -> ``accuracy``; grad -> ``grad_norms``, ``grad_samples``;
    hessian -> ``hessian``; boundary -> ``boundary``, ``boundary_samples``; bound -> ``bound``;
    attr -> ``attr``; density -> ``density``, ``density_nodes``; always ``summary``.
    ``seed`` drives the bootstrap and the random Lanczos starts.
    """
    chosen = parse_diagnostics(diagnostics)
    base, linearized = load_checkpoint(base_path), load_checkpoint(linearized_path)
    _check_pair(base, linearized)
    bundle = load_dataset_for(base.sidecar, data_root)
    if split not in bundle.splits:
        raise DatasetError(f"dataset {bundle.name} has no split {split!r}; expected one of {', '.join(bundle.splits)}")
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
            rows.append({"model": model_name, "checkpoint": str(checkpoint.path),
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


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> None, numpy scalars -> Python)."""
    return json.loads(table.to_json(orient="records", double_precision=15))


def audit_to_json(result: dict[str, Any]) -> dict[str, Any]:
    """The CLI's ``--json`` contract: ``{"accuracy": [rows], "grad_norms": [rows], "hessian": [rows],
    "boundary": [rows], "bound": [rows], "param_distance": float}`` with only the requested tables
    (``attr`` and ``density`` rows too when requested); every row has a ``group`` field."""
    out: dict[str, Any] = {name: _records(result[name]) for name in JSON_TABLES if name in result}
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
