"""Audit results: the tidy tables of many linearization runs of one base checkpoint, and the views the
audit and diagnostics pages show.

One :class:`AuditResults` holds, whatever produced it (the shipped default audit built by
:mod:`fairlin_core.audits.grid`, or the finished runs of a run store via :func:`collect_from_store`):

- ``runs``: one row per run: run_id, method, budget (as requested, text), budget_fraction (of the base
  ReLUs, requested), relu_count, base_relu_count, seed, mitigation ("off"/"on"), mu (the lagrangian's; NaN
  when off or another method; the method itself is in the run's config, see ``run_protocols``),
  configuration (the linearizer's, JSON text), param_distance (||theta_lin - theta_base||, NaN when not
  measured).
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
  dataset, group_attribute, group_names (the order every chart uses), base_relu_count, model (the base
  architecture's spec; absent from older results), how it was made.

Cost estimates are not stored: :meth:`AuditResults.run_costs` prices every run on read (per run and
protocol profile, :mod:`fairlin_core.costs`) from the base architecture (``meta["model"]``, else the base
checkpoint's sidecar) and the run's ReLU count, and :meth:`~AuditResults.cost_front` sets worst-group and
minority accuracy against the estimated latency with the Pareto front across methods and budgets.

The views (:meth:`AuditResults.group_drop`, :meth:`~AuditResults.fairness_summary`, ...) take the current
choices (split, method, mitigation, budget) and return one tidy DataFrame, aggregated across seeds with a
Student-t 95% interval where they say so; budgets are ordered from the largest to the smallest, groups in
the dataset's order. Results are immutable once built, so every view is computed once per instance and
arguments: a view returns the same DataFrame object on every call, which callers must not modify in
place (filter or copy it; lists are returned as fresh copies).

``save(folder)`` writes one Parquet file per table (``NAME.parquet``) plus ``configs.json`` and
``meta.json``; :func:`load_results` reads them back, and still reads folders of the older ``NAME.csv``
tables. The two large tables (density, attributions) are read on first access.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import FairLinError, brief
from ..inputs import open_regular, read_json
from ..runtime import json_ready

TABLES = ("runs", "groups", "diagnostics", "density", "attributions", "group_sizes")
LAZY_TABLES = ("density", "attributions")  # the large per-run detail tables: read on first access
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
CLASS_RULE = "minority = a group whose share of the training set is below an equal share (1 / number of groups)"
RUN_KEYS = ["method", "budget", "budget_fraction", "mitigation"]
CELL_KEYS = ["budget", "budget_fraction", "group"]
DIAGNOSTIC_VALUES = ["loss", "grad_norm", "top_eigenvalue", "softmax_margin_mean", "input_margin_mean", "bound",
                     "excess_loss"]
PARQUET_COMPRESSION = "zstd"
MAX_JSON_BYTES = 64 * 1024 * 1024  # configs.json and meta.json of one results folder
MAX_TABLE_BYTES = 2**30  # one table file of a results folder

# The shipped default audit (what the dashboard's audit pages open on); $FAIRLIN_AUDIT_RESULTS overrides it.
SHIPPED_AUDIT = Path(os.environ.get("FAIRLIN_AUDIT_RESULTS")
                     or Path(__file__).resolve().parents[2] / "results" / "default_audit")


class LazyTable:
    """A table that is read on first access: ``load()`` returns the DataFrame."""

    def __init__(self, load: Callable[[], pd.DataFrame]):
        self.load = load


def _view(method: Callable) -> Callable:
    """Memoise a view on its :class:`AuditResults` instance, keyed by the view and its (bound) arguments."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def memoised(self: AuditResults, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        key = (method.__name__, bound.args[1:])
        cache = self._views
        if key not in cache:
            cache.setdefault(key, method(self, *args, **kwargs))
        value = cache[key]
        return list(value) if isinstance(value, list) else value

    return memoised


@dataclass(frozen=True, eq=False, repr=False)
class AuditResults:
    """The tables described in the module docstring (every table present, possibly empty), and their views.

    ``density`` and ``attributions`` may be given as :class:`LazyTable`; they are then read on first access
    (:meth:`is_loaded` tells whether that happened).
    """

    runs: pd.DataFrame
    groups: pd.DataFrame
    diagnostics: pd.DataFrame
    density: pd.DataFrame
    attributions: pd.DataFrame
    group_sizes: pd.DataFrame
    configs: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    _views: dict[tuple, Any] = field(default_factory=dict, init=False)
    _loaders: dict[str, LazyTable] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        for name in TABLES:
            if isinstance(self.__dict__[name], LazyTable):
                self._loaders[name] = self.__dict__.pop(name)  # absent until read: __getattr__ reads it

    def __getattr__(self, name: str) -> Any:
        loaders = self.__dict__.get("_loaders")
        if loaders is None or name not in loaders:
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
        return self.__dict__.setdefault(name, loaders[name].load())

    def __repr__(self) -> str:
        return (f"AuditResults({len(self.runs)} runs of {self.meta.get('checkpoint')}, tables "
                f"{', '.join(n if self.is_loaded(n) else n + ' (not read yet)' for n in TABLES)})")

    def is_loaded(self, name: str) -> bool:
        """Whether table ``name`` is in memory (False for a lazy table not accessed yet)."""
        return name in self.__dict__

    @classmethod
    def from_tables(cls, tables: dict[str, pd.DataFrame | LazyTable], *, group_sizes: pd.DataFrame,
                    configs: dict[str, Any], meta: dict[str, Any]) -> AuditResults:
        """Fill absent tables with empty ones and put every table's columns in their documented order (a
        :class:`LazyTable` stays lazy and is shaped when read)."""
        tables = {**tables, "group_sizes": group_sizes}
        return cls(**{name: _shaped_lazily(tables.get(name), name) for name in TABLES}, configs=configs, meta=meta)

    @property
    def group_names(self) -> list[str]:
        """Group names in the dataset's order (the order and colours of every chart)."""
        names = self.meta.get("group_names")
        return [str(n) for n in names] if names else list(dict.fromkeys(self.groups["group"]))

    def save(self, folder: str | Path) -> list[Path]:
        """Write every table as ``NAME.parquet`` (replacing an older ``NAME.csv`` there) plus configs.json and
        meta.json; returns the paths."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        tables = {name: getattr(self, name) for name in TABLES}  # read lazy tables before anything is replaced
        paths = []
        for name, table in tables.items():
            path = folder / f"{name}.parquet"
            staging = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            table.to_parquet(staging, index=False, compression=PARQUET_COMPRESSION)
            staging.replace(path)
            (folder / f"{name}.csv").unlink(missing_ok=True)  # one format per folder
            paths.append(path)
        for name, data in (("configs", self.configs), ("meta", self.meta)):
            path = folder / f"{name}.json"
            path.write_text(json.dumps(json_ready(data), indent=1, sort_keys=True, allow_nan=False) + "\n")
            paths.append(path)
        return paths

    # -- views ------------------------------------------------------------------------------------------

    @_view
    def methods(self) -> list[str]:
        """The methods present, in the engine's order (snl, deepreduce, random)."""
        from ..linearizers import (
            METHODS,  # the engine's order; imported here so reading results needs no torch
        )
        present = set(self.runs["method"])
        return [m for m in METHODS if m in present] + sorted(present - set(METHODS))

    @_view
    def budgets(self, method: str | None = None) -> list[str]:
        """The completed budgets (of one method, or of any), largest first."""
        runs = self.runs if method is None else self.runs[self.runs["method"] == method]
        order = runs.drop_duplicates("budget").sort_values("budget_fraction", ascending=False)
        return order["budget"].tolist()

    @_view
    def splits(self) -> list[str]:
        return list(dict.fromkeys(self.groups["split"]))

    @_view
    def group_runs(self, split: str) -> pd.DataFrame:
        """``groups`` rows of one split joined with their run's method, budget, seed, mitigation, relu_count."""
        groups = self.groups[self.groups["split"] == split]
        runs = self.runs[["run_id", *RUN_KEYS, "seed", "relu_count"]]
        return groups.merge(runs, on="run_id", validate="many_to_one")

    def _ordered(self, table: pd.DataFrame) -> pd.DataFrame:
        order = {g: i for i, g in enumerate(self.group_names)}
        return table.assign(_g=table["group"].map(order)).sort_values(["_g", "budget_fraction"],
                                                                      ascending=[True, False]).drop(columns="_g")

    @_view
    def group_drop(self, split: str, method: str, mitigation: str) -> pd.DataFrame:
        """Per group and budget: relative accuracy drop (%) and accuracy, means across seeds with 95% intervals.

        Columns: budget, budget_fraction, group, n (test examples), train_n, relu_count (mean), n_seeds,
        drop_mean, drop_ci_low, drop_ci_high, accuracy_mean, accuracy_ci_low, accuracy_ci_high, base_accuracy.
        """
        from ..metrics.fairness import (
            seed_summary,  # imports torch: only when a view needs it
        )
        rows = self.group_runs(split)
        rows = rows[(rows["method"] == method) & (rows["mitigation"] == mitigation)]
        keys = CELL_KEYS
        drop = seed_summary(rows, "relative_drop", by=keys).rename(columns={
            "mean": "drop_mean", "ci_low": "drop_ci_low", "ci_high": "drop_ci_high", "std": "drop_std"})
        accuracy = seed_summary(rows, "accuracy", by=keys).rename(columns={
            "mean": "accuracy_mean", "ci_low": "accuracy_ci_low", "ci_high": "accuracy_ci_high"})
        extra = rows.groupby(keys, sort=False).agg(n=("n", "first"), relu_count=("relu_count", "mean"),
                                                   base_accuracy=("base_accuracy", "first")).reset_index()
        accuracy["accuracy_ci_low"] = accuracy["accuracy_ci_low"].clip(lower=0.0)
        accuracy["accuracy_ci_high"] = accuracy["accuracy_ci_high"].clip(upper=1.0)
        drop["drop_ci_high"] = drop["drop_ci_high"].clip(upper=100.0)
        table = drop.merge(accuracy[[*keys, "accuracy_mean", "accuracy_ci_low", "accuracy_ci_high"]], on=keys)
        table = table.merge(extra, on=keys).merge(self.train_sizes(), on="group", how="left")
        return self._ordered(table).reset_index(drop=True)

    @_view
    def train_sizes(self) -> pd.DataFrame:
        """group, train_n: the training-set size of every group (what makes a group a minority)."""
        sizes = self.group_sizes
        return sizes[sizes["split"] == "train"][["group", "n"]].rename(columns={"n": "train_n"})

    @_view
    def fairness_summary(self, split: str) -> pd.DataFrame:
        """Per method, budget and mitigation: overall accuracy (n-weighted over groups), worst-group accuracy,
        parity gap (best minus worst group), means across seeds, plus relu_count and n_seeds."""
        rows = self.group_runs(split)
        rows = rows[rows["n"] > 0]
        per_run = rows.groupby(["run_id", *RUN_KEYS, "seed", "relu_count"], sort=False).apply(
            lambda r: pd.Series({"overall_accuracy": (r["accuracy"] * r["n"]).sum() / r["n"].sum(),
                                 "worst_group_accuracy": r["accuracy"].min(),
                                 "parity_gap": r["accuracy"].max() - r["accuracy"].min()}),
            include_groups=False).reset_index()
        table = per_run.groupby(RUN_KEYS, sort=False).agg(
            relu_count=("relu_count", "mean"), n_seeds=("seed", "nunique"),
            overall_accuracy=("overall_accuracy", "mean"), worst_group_accuracy=("worst_group_accuracy", "mean"),
            parity_gap=("parity_gap", "mean")).reset_index()
        return table.sort_values(["method", "budget_fraction", "mitigation"], ascending=[True, False, True]) \
                    .reset_index(drop=True)

    @_view
    def method_comparison(self, split: str, mitigation: str) -> pd.DataFrame:
        """:meth:`group_drop` of every method stacked with a ``method`` column (filter one budget to compare)."""
        tables = [self.group_drop(split, method, mitigation).assign(method=method) for method in self.methods()]
        return pd.concat(tables, ignore_index=True)

    @_view
    def mitigation_effect(self, split: str, method: str) -> pd.DataFrame:
        """The paper's Figure 9: per budget and group, relative drop without minus with mitigation (points;
        positive = mitigation helped), with both drops and the accuracy difference (means across seeds), and a
        Student-t 95% interval of the difference over the seeds that ran both (drop_difference_ci_low/high,
        n_seeds)."""
        from ..metrics.fairness import seed_summary
        off = self.group_drop(split, method, "off")
        on = self.group_drop(split, method, "on")
        keys = CELL_KEYS
        table = off[[*keys, "n", "train_n", "drop_mean", "accuracy_mean"]].merge(
            on[[*keys, "drop_mean", "accuracy_mean"]], on=keys, suffixes=("_off", "_on"))
        table["drop_difference"] = table["drop_mean_off"] - table["drop_mean_on"]
        table["accuracy_gain"] = table["accuracy_mean_on"] - table["accuracy_mean_off"]
        rows = self.group_runs(split)
        rows = rows[rows["method"] == method]
        paired = rows[rows["mitigation"] == "off"].merge(rows[rows["mitigation"] == "on"], on=[*keys, "seed"],
                                                         suffixes=("_off", "_on"))
        paired["difference"] = paired["relative_drop_off"] - paired["relative_drop_on"]
        interval = seed_summary(paired, "difference", by=keys)[[*keys, "n_seeds", "ci_low", "ci_high"]].rename(
            columns={"ci_low": "drop_difference_ci_low", "ci_high": "drop_difference_ci_high"})
        table = table.merge(interval, on=keys, how="left")
        return self._ordered(table).reset_index(drop=True)

    @_view
    def missing_runs(self) -> pd.DataFrame:
        """Cells of the grid spanned by the methods, budgets, seeds and mitigations present that have no run
        (method, budget, seed, mitigation), minus the combinations the results' metadata says were skipped."""
        runs = self.runs
        if runs.empty:
            return pd.DataFrame(columns=["method", "budget", "seed", "mitigation"])
        skipped = {(s["method"], s["budget"]) for s in self.meta.get("skipped", [])}
        have = set(zip(runs["method"], runs["budget"], runs["seed"], runs["mitigation"]))
        grid = itertools.product(runs["method"].drop_duplicates(), self.budgets(), sorted(runs["seed"].unique()),
                                 runs["mitigation"].drop_duplicates())
        rows = [{"method": m, "budget": b, "seed": int(s), "mitigation": x} for m, b, s, x in grid
                if (m, b, s, x) not in have and (m, b) not in skipped]
        return pd.DataFrame(rows, columns=["method", "budget", "seed", "mitigation"])

    # -- diagnostics views ------------------------------------------------------------------------------

    @_view
    def diagnostics_by_budget(self, method: str, mitigation: str) -> pd.DataFrame:
        """Per budget and group, the linearized model's diagnostics (means over the seeds that have them), plus
        one row per group at budget "base" (budget_fraction 1) with the base model's values.

        Columns: budget, budget_fraction, group, loss, grad_norm, top_eigenvalue, softmax_margin_mean,
        input_margin_mean, bound, excess_loss, accuracy (test, same seeds), n_seeds.
        """
        diag = self.diagnostics.merge(self.runs[["run_id", *RUN_KEYS, "seed"]], on="run_id")
        diag = diag[(diag["method"] == method) & (diag["mitigation"] == mitigation)]
        values = DIAGNOSTIC_VALUES
        if diag.empty:
            return pd.DataFrame(columns=["budget", "budget_fraction", "group", *values, "accuracy", "n_seeds"])
        accuracy = self.groups[self.groups["split"] == "test"][["run_id", "group", "accuracy", "base_accuracy"]]
        diag = diag.merge(accuracy, on=["run_id", "group"], how="left")
        lin = diag[diag["model"] == "lin"].groupby(CELL_KEYS, sort=False).agg(
            **{v: (v, "mean") for v in values}, accuracy=("accuracy", "mean"),
            n_seeds=("seed", "nunique")).reset_index()
        base = diag[diag["model"] == "base"].groupby("group", sort=False).agg(
            **{v: (v, "mean") for v in values}, accuracy=("base_accuracy", "mean"),
            n_seeds=("seed", "nunique")).reset_index().assign(budget="base", budget_fraction=1.0)
        table = pd.concat([base, lin], ignore_index=True)
        return self._ordered(table).reset_index(drop=True)

    # -- private-inference cost views ------------------------------------------------------------------

    def model_spec(self) -> Any:
        """The base architecture (:class:`~fairlin_core.models.ModelSpec`): ``meta["model"]`` where the results
        carry it, else the sidecar of the base checkpoint (a run configuration's path, else the shipped
        checkpoints folder); FairLinError when neither is found or its ReLU count disagrees with the results."""
        from ..checkpoints import read_sidecar
        from ..models import ModelSpec, build_model, total_sites
        data = self.meta.get("model")
        if not data:
            try:
                data = read_sidecar(self.base_checkpoint())["model"]
            except FairLinError as error:
                raise FairLinError(f"cannot estimate costs: {error}") from None
        spec = ModelSpec.from_dict(data)
        base = self.meta.get("base_relu_count")
        sites = total_sites(build_model(spec)) if base is not None else None
        if sites is not None and sites != int(base):
            raise FairLinError(f"cannot estimate costs: architecture {spec.name} {dict(spec.options)} on "
                               f"{tuple(spec.input_shape)} has {sites} ReLU sites but the results' base model has "
                               f"{base}")
        return spec

    @_view
    def run_costs(self, profile: str = "delphi") -> pd.DataFrame:
        """Per run, the estimated cost of one private inference under ``profile`` (a shipped profile's name or
        a profile file): run_id, profile, relu_count, macs, online_mb, offline_mb, online_latency_s,
        offline_latency_s, total_latency_s (MB, seconds). The ReLU cost follows from each run's total ReLU
        count (exact: profiles price every ReLU alike); the linear layers are those of the base architecture,
        rebuilt with a run's stem stride where its linearizer (DeepReDuce) changed it."""
        from ..costs import run_costs
        return run_costs(self.model_spec(), self.runs, profile)


    @_view
    def run_protocols(self) -> pd.DataFrame:
        """Per run, its protocol from its configuration: run_id, method, budget, seed, mitigation,
        finetune_epochs, snl_epochs (SNL runs only, else NaN), mu (lagrangian runs only, else NaN), objective
        (:func:`mitigation_label` of the run's mitigation, "none" when off) and label (e.g. "snl 1% · seed 0 ·
        finetune 20 ep · SNL 100 ep · lagrangian mu 0.01"), the name a run goes by instead of its id."""
        rows = []
        for run in self.runs.itertuples(index=False):
            config = self.configs.get(run.run_id) or {}
            finetune = (config.get("finetune") or {}).get("epochs")
            snl = (config.get("snl") or {}).get("epochs") if run.method == "snl" else None
            objective = "none"
            if run.mitigation == "on":  # results without configs know only mu: they predate the other methods
                mitigation = config.get("mitigation") or ({"mu": run.mu} if pd.notna(run.mu) else None)
                objective = mitigation_label(mitigation) if mitigation else "mitigated"
            finetune = float("nan") if finetune is None else float(finetune)
            snl = float("nan") if snl is None else float(snl)
            protocol = _recipe_label(finetune, snl, objective if run.mitigation == "on" else "plain finetune")
            rows.append({"run_id": run.run_id, "method": run.method, "budget": run.budget, "seed": run.seed,
                         "mitigation": run.mitigation, "finetune_epochs": finetune, "snl_epochs": snl,
                         "mu": float(run.mu) if run.mitigation == "on" else float("nan"),  # NaN unless lagrangian
                         "objective": objective,
                         "label": f"{run.method} {run.budget} · seed {int(run.seed)} · {protocol}"})
        return pd.DataFrame(rows, columns=["run_id", "method", "budget", "seed", "mitigation", "finetune_epochs",
                                           "snl_epochs", "mu", "objective", "label"])

    def run_labels(self) -> dict[str, str]:
        """run_id -> the run's protocol label (:meth:`run_protocols`)."""
        table = self.run_protocols()
        return dict(zip(table["run_id"], table["label"]))

    @_view
    def recipes(self) -> list[str]:
        """The training protocols the runs follow, as labels ("finetune 10 ep · SNL 30 ep · lagrangian mu 0.01"):
        the finetune epochs, SNL epochs (of SNL runs) and mitigation objective that must agree for runs to be
        averaged into one series (runs of two mitigation methods are two protocols). One recipe (or none) means
        every series is homogeneous."""
        return list(dict.fromkeys(_recipe_label(*key) for key in self._recipe_keys()))

    def _recipe_keys(self) -> list[tuple]:
        table = self.run_protocols()
        finetune = sorted(set(table["finetune_epochs"].dropna())) or [float("nan")]
        snl = sorted(set(table["snl_epochs"].dropna())) or [float("nan")]
        objectives = sorted(set(table.loc[table["mitigation"] == "on", "objective"])) or [None]
        keys = [(f, e, o) for f in finetune for e in snl for o in objectives]
        return [k for k in keys if len(self._recipe_runs(k))]

    def _recipe_runs(self, key: tuple) -> list[str]:
        finetune, snl, objective = key
        table = self.run_protocols()

        def same(column: pd.Series, value: float) -> pd.Series:
            return column.isna() | (column == value) if pd.notna(value) else column.isna()

        plain = table["mitigation"] == "off"
        keep = same(table["finetune_epochs"], finetune) & same(table["snl_epochs"], snl) \
            & (plain | (table["objective"] == objective))
        return table[keep]["run_id"].tolist()

    @_view
    def restricted(self, recipe: str) -> AuditResults:
        """These results narrowed to the runs of one training protocol of :meth:`recipes` (runs of every
        method that agree with it; unmitigated runs join every mitigation objective), as a new :class:`AuditResults`."""
        keys = {(_recipe_label(*k)): k for k in self._recipe_keys()}
        if recipe not in keys:
            raise FairLinError(f"unknown training protocol {brief(recipe)}; expected one of {', '.join(keys)}")
        keep = set(self._recipe_runs(keys[recipe]))
        narrowed = {name: getattr(self, name) for name in ("runs", "groups", "diagnostics", "density",
                                                             "attributions")}
        tables = {name: table[table["run_id"].isin(keep)] for name, table in narrowed.items()}
        return AuditResults.from_tables(tables, group_sizes=self.group_sizes,
                                        configs={r: c for r, c in self.configs.items() if r in keep}, meta=self.meta)

    @_view
    def group_classes(self) -> pd.DataFrame:
        """group, train_n, train_share (fraction of the training set), group_class: "minority" when the group's
        share of the training set is below an equal share (1 / number of groups, :data:`CLASS_RULE`), else
        "majority"; groups in the dataset's order (every group "majority" without training sizes)."""
        return classify_groups(self.train_sizes(), self.group_names)

    @_view
    def minority_groups(self) -> list[str]:
        """Groups whose share of the training set is below an equal share (1 / number of groups)."""
        classes = self.group_classes()
        return classes[classes["group_class"] == "minority"]["group"].tolist()

    @_view
    def default_split(self) -> str:
        """The split the pages open on: ``balanced`` (every group equally represented) where present, else
        ``test``, else the first split."""
        return default_split(self.splits())

    @_view
    def class_drop(self, split: str, mitigation: str) -> pd.DataFrame:
        """Majority vs minority (:meth:`group_classes`): per method, budget and class, the relative drop (%) of
        the class's accuracy (test-n-weighted over its groups, base and linearized alike), mean across seeds
        with a Student-t 95% interval.

        Columns: method, budget, budget_fraction, group_class, relu_count (mean), n (examples of the class),
        n_seeds, drop_mean, drop_ci_low, drop_ci_high, accuracy_mean, base_accuracy; methods in the engine's
        order, budgets largest first.
        """
        from ..metrics.fairness import seed_summary
        rows = self.group_runs(split)
        rows = rows[(rows["mitigation"] == mitigation) & (rows["n"] > 0)]
        classes = dict(zip(*self.group_classes()[["group", "group_class"]].T.values))
        rows = rows.assign(group_class=rows["group"].map(classes), weight_lin=rows["accuracy"] * rows["n"],
                           weight_base=rows["base_accuracy"] * rows["n"])
        keys = ["method", "budget", "budget_fraction", "group_class"]
        per_run = rows.groupby([*keys, "run_id", "seed"], sort=False).agg(
            n=("n", "sum"), correct=("weight_lin", "sum"), base=("weight_base", "sum"),
            relu_count=("relu_count", "first")).reset_index()
        per_run["accuracy"] = per_run["correct"] / per_run["n"]
        per_run["base_accuracy"] = per_run["base"] / per_run["n"]
        per_run = with_relative_drop(per_run)
        columns = [*keys, "relu_count", "n", "n_seeds", "drop_mean", "drop_ci_low", "drop_ci_high",
                   "accuracy_mean", "base_accuracy"]
        if per_run.empty:
            return pd.DataFrame(columns=columns)
        drop = seed_summary(per_run, "relative_drop", by=keys).rename(columns={
            "mean": "drop_mean", "ci_low": "drop_ci_low", "ci_high": "drop_ci_high"})
        extra = per_run.groupby(keys, sort=False).agg(relu_count=("relu_count", "mean"), n=("n", "first"),
                                                      accuracy_mean=("accuracy", "mean"),
                                                      base_accuracy=("base_accuracy", "first")).reset_index()
        table = drop.merge(extra, on=keys)
        order = {m: i for i, m in enumerate(self.methods())}
        table = table.assign(_m=table["method"].map(order)).sort_values(
            ["_m", "budget_fraction", "group_class"], ascending=[True, False, False]).drop(columns="_m")
        return table[columns].reset_index(drop=True)

    @_view
    def headline(self, split: str) -> dict[str, Any]:
        """The audit's finding in one sentence, measured from the results: at the smallest budget of the first
        method, the minority and majority relative drops (:meth:`class_drop`, unmitigated) and the group that
        pays most. Keys: method, budget, relu_count, split, n_seeds, minority / majority (dicts of mean,
        ci_low, ci_high in %), worst_group, worst_group_drop, text; {} without runs or without a minority."""
        methods = self.methods()
        if not methods:
            return {}
        method = methods[0]
        table = self.class_drop(split, "off")
        table = table[table["method"] == method]
        if table.empty or set(table["group_class"]) != {"minority", "majority"}:
            return {}
        budget = self.budgets(method)[-1]
        cells = table[table["budget"] == budget].set_index("group_class")
        groups = self.group_drop(split, method, "off")
        groups = groups[groups["budget"] == budget]
        worst = groups.loc[groups["drop_mean"].idxmax()]
        values = {c: {"mean": float(cells.at[c, "drop_mean"]), "ci_low": float(cells.at[c, "drop_ci_low"]),
                      "ci_high": float(cells.at[c, "drop_ci_high"])} for c in ("minority", "majority")}
        relus = int(round(float(cells["relu_count"].mean())))
        n_seeds = int(cells["n_seeds"].max())
        from ..runtime import format_interval
        text = (f"With {method} keeping {budget} of the ReLUs ({relus:,}), the minority groups lose "
                f"{format_interval(**values['minority'])}% of their accuracy and the majority groups "
                f"{format_interval(**values['majority'])}% (relative drop, mean [95% interval] over {n_seeds} "
                f"seeds, {split} split); group {worst['group']} pays most ({worst['drop_mean']:.1f}%).")
        return {"method": method, "budget": budget, "relu_count": relus, "split": split, "n_seeds": n_seeds,
                **values, "worst_group": str(worst["group"]), "worst_group_drop": float(worst["drop_mean"]),
                "text": text}

    @_view
    def base_accuracy(self, split: str) -> pd.DataFrame:
        """The base model's accuracy per group on ``split`` with a percentile-bootstrap 95% interval over the
        group's examples: group, group_class, train_n, n, accuracy, ci_low, ci_high (fractions)."""
        from ..metrics.fairness import bootstrap_accuracy
        rows = self.groups[self.groups["split"] == split].drop_duplicates("group")[["group", "n", "base_accuracy"]]
        table = self.group_classes()[["group", "group_class", "train_n"]].merge(
            rows.rename(columns={"base_accuracy": "accuracy"}), on="group")
        low, high = bootstrap_accuracy(table["accuracy"], table["n"])
        return table.assign(ci_low=low, ci_high=high)

    @_view
    def bound_agreement(self, method: str, budget: str, mitigation: str = "off") -> dict[str, Any]:
        """How Theorem 4.4's bound tracks the measured excess loss across groups at one budget: spearman (rank
        correlation, scipy.stats.spearmanr), p_value, n_groups, median_ratio (median of bound / excess loss
        over the groups whose excess loss is positive; NaN when none is) and text (one sentence)."""
        from scipy.stats import spearmanr
        rows = self.diagnostics_by_budget(method, mitigation)
        rows = rows[(rows["budget"] == budget)].dropna(subset=["bound", "excess_loss"])
        if len(rows) < 3:
            return {"spearman": float("nan"), "p_value": float("nan"), "n_groups": len(rows),
                    "median_ratio": float("nan"), "text": "Too few groups with a bound to rank."}
        result = spearmanr(rows["bound"], rows["excess_loss"])
        positive = rows[rows["excess_loss"] > 0]
        ratio = float((positive["bound"] / positive["excess_loss"]).median()) if len(positive) else float("nan")
        rho, p = float(result.statistic), float(result.pvalue)
        loose = (f"the bound is a median {ratio:,.0f}× the measured excess loss (over the {len(positive)} groups "
                 f"whose loss grew), so it is loose in size" if len(positive) else "no group's loss grew")
        ranking = ("it ranks the groups as the measured loss does" if rho >= 0.5 else
                   "it does not rank the groups reliably here" if rho > -0.5 else "it ranks the groups backwards")
        text = (f"Spearman rank correlation between bound and measured excess loss across {len(rows)} groups: "
                f"ρ = {rho:.2f} (p = {p:.2g}); {loose}, and {ranking}.")
        return {"spearman": rho, "p_value": p, "n_groups": len(rows), "median_ratio": ratio, "text": text}

    def base_checkpoint(self) -> Path:
        """The base checkpoint of these results on this machine (a run configuration's path, else the shipped
        checkpoints folder); FairLinError when it is not found."""
        from ..checkpoints import resolve_checkpoint_path
        from ..checkpoints.catalog import SHIPPED_CHECKPOINTS
        name = str(self.meta.get("checkpoint", ""))
        candidates = [Path(c["checkpoint"]) for c in self.configs.values() if c.get("checkpoint")]
        candidates += [SHIPPED_CHECKPOINTS / Path(name).name] if name else []
        found = next((path for path in candidates if path.is_file() and path.name == Path(name).name), None)
        if found is None:
            raise FairLinError(f"base checkpoint {brief(name)} of these results was not found (looked in the run "
                               f"configurations and {SHIPPED_CHECKPOINTS}); expected its .safetensors + .json "
                               f"beside the results' checkpoint path")
        return resolve_checkpoint_path(found)

    @_view
    def mean_inputs(self, split: str = "test", data_root: str | None = None) -> pd.DataFrame:
        """The mean input image of each group (group, element, value: flat, normalised inputs), from the
        dataset of the base checkpoint (:meth:`base_checkpoint`) reloaded with its options."""
        from ..checkpoints import load_dataset_for, read_sidecar
        bundle = load_dataset_for(read_sidecar(self.base_checkpoint()), data_root,
                                  group=self.meta.get("group_attribute"))
        return bundle.group_mean_inputs(split if split in bundle.splits else "test")

    @_view
    def cost_front(self, split: str, profile: str = "delphi") -> pd.DataFrame:
        """Fairness against estimated private-inference latency, one row per method, budget and mitigation
        (means across seeds) plus a ``base`` row (every ReLU on, the base model's accuracies).

        Columns: method, budget, budget_fraction, mitigation, n_seeds, relu_count, online_latency_s,
        offline_latency_s, total_latency_s, online_mb, offline_mb, overall_accuracy, worst_group_accuracy,
        minority_accuracy (test-n-weighted over :meth:`minority_groups`; NaN without minority), and
        front_worst / front_minority: whether the row is on the Pareto front of lowest online latency and
        highest worst-group / minority accuracy across every method, budget and mitigation (base included).
        """
        from ..costs import base_cost
        rows = self.group_runs(split)
        rows = rows[rows["n"] > 0]
        minority = set(self.minority_groups())
        costs = self.run_costs(profile).drop(columns=["profile", "relu_count"])
        per_run = rows.groupby(["run_id", *RUN_KEYS, "seed", "relu_count"], sort=False).apply(
            lambda r: pd.Series(_accuracies(r["accuracy"], r["n"], r["group"].isin(minority))),
            include_groups=False).reset_index().merge(costs, on="run_id", validate="one_to_one")
        values = ["relu_count", "online_latency_s", "offline_latency_s", "total_latency_s", "online_mb", "offline_mb",
                  "overall_accuracy", "worst_group_accuracy", "minority_accuracy"]
        table = per_run.groupby(RUN_KEYS, sort=False).agg(n_seeds=("seed", "nunique"),
                                                          **{v: (v, "mean") for v in values}).reset_index()
        base_rows = rows.drop_duplicates("group")
        base = {"method": "base", "budget": "100%", "budget_fraction": 1.0, "mitigation": "off",
                "n_seeds": int(rows["seed"].nunique()),
                **_accuracies(base_rows["base_accuracy"], base_rows["n"], base_rows["group"].isin(minority))}
        base.update({k: v for k, v in base_cost(self.model_spec(), profile).items() if k in values})
        table = pd.concat([pd.DataFrame([base]), table], ignore_index=True)
        for accuracy, column in (("worst_group_accuracy", "front_worst"), ("minority_accuracy", "front_minority")):
            table[column] = _pareto(table["online_latency_s"], table[accuracy])
        return table[["method", "budget", "budget_fraction", "mitigation", "n_seeds", *values, "front_worst",
                      "front_minority"]].sort_values(["online_latency_s", "method"]).reset_index(drop=True)

    @_view
    def parameter_distances(self) -> pd.DataFrame:
        """method, mitigation, budget, budget_fraction, relu_count, param_distance (mean over the seeds that
        measured it)."""
        runs = self.runs.dropna(subset=["param_distance"])
        return runs.groupby(["method", "mitigation", "budget", "budget_fraction"], sort=False).agg(
            relu_count=("relu_count", "mean"), param_distance=("param_distance", "mean")).reset_index() \
            .sort_values(["method", "mitigation", "budget_fraction"], ascending=[True, True, False]) \
            .reset_index(drop=True)

    @_view
    def diagnostic_run(self, method: str, budget: str, mitigation: str = "off",
                       table: str = "density") -> str | None:
        """The id of the first run (lowest seed) of that cell that has rows in ``table`` (density or
        attributions), or None."""
        have = set(self._table(table)["run_id"])
        runs = self.runs[(self.runs["method"] == method) & (self.runs["budget"] == budget)
                         & (self.runs["mitigation"] == mitigation) & self.runs["run_id"].isin(have)]
        return runs.sort_values("seed")["run_id"].iloc[0] if len(runs) else None

    @_view
    def run_rows(self, table: str, run_id: str) -> pd.DataFrame:
        """The rows of one run in ``table`` (e.g. density or attributions)."""
        rows = self._table(table)
        return rows[rows["run_id"] == run_id]

    def _table(self, name: str) -> pd.DataFrame:
        if name not in TABLES:
            raise FairLinError(f"unknown results table {brief(name)}; one of {', '.join(TABLES)}")
        return getattr(self, name)


def classify_groups(train_sizes: pd.DataFrame, names: list[str] | None = None) -> pd.DataFrame:
    """The one rule that classes groups (:data:`CLASS_RULE`). train_sizes: group, train_n (or a whole group-sizes
    table: split, group, n, whose train rows are used); names: the groups' order (None = the table's).
    Returns group, train_n, train_share (fraction of the training set) and group_class ("minority" when the
    share is below 1 / number of groups, else "majority"; every group "majority" without training sizes)."""
    if "train_n" not in train_sizes:
        train = train_sizes[train_sizes["split"] == "train"]
        train_sizes = train[["group", "n"]].rename(columns={"n": "train_n"}).astype({"group": str})
    names = [str(n) for n in names] if names is not None else list(dict.fromkeys(train_sizes["group"]))
    sizes = train_sizes.drop_duplicates("group").set_index("group").reindex(names).rename_axis("group") \
                       .reset_index()[["group", "train_n"]]
    total = sizes["train_n"].sum()
    share = sizes["train_n"] / total if total else sizes["train_n"] * float("nan")
    minority = share < 1.0 / max(len(sizes), 1)
    return sizes.assign(train_share=share, group_class=["minority" if m else "majority" for m in minority])


def default_split(splits: list[str]) -> str:
    """The split results open on: ``balanced`` (every group equally represented) where present, else ``test``,
    else the first of ``splits``."""
    return next((s for s in ("balanced", "test") if s in splits), splits[0] if splits else "test")


def _recipe_label(finetune: float, snl: float, objective: str | None) -> str:
    parts = [f"finetune {int(finetune)} ep"] if pd.notna(finetune) else []
    parts += [f"SNL {int(snl)} ep"] if pd.notna(snl) else []
    parts += [objective] if objective else []
    return " · ".join(parts) or "default protocol"


def lagrangian_mu(mitigation: dict[str, Any] | None) -> float:
    """The mu of a run config's lagrangian mitigation (a dict without ``method`` is one); NaN for none or
    another method."""
    if mitigation is None or mitigation.get("method", "lagrangian") != "lagrangian":
        return float("nan")
    return float(mitigation.get("mu", float("nan")))


def mitigation_label(mitigation: dict[str, Any] | None) -> str:
    """A run config's mitigation as text: "none", "lagrangian mu 0.01" (plus "normalised", "tolerance T",
    "lambda_max M" when set), "reweight", "groupdro eta 0.01". A dict without ``method`` is the lagrangian
    (configs stored before methods existed); settings a sparse dict lacks are left out."""
    if mitigation is None:
        return "none"
    method = mitigation.get("method", "lagrangian")
    parts = [method]
    if method == "lagrangian":
        parts += [f"mu {mitigation['mu']:g}"] if mitigation.get("mu") is not None else []
        parts += ["normalised"] if mitigation.get("normalize") else []
        parts += [f"tolerance {mitigation['tolerance']:g}"] if mitigation.get("tolerance") else []
        parts += [f"lambda_max {mitigation['lambda_max']:g}"] if mitigation.get("lambda_max") is not None else []
    elif method == "groupdro" and mitigation.get("eta") is not None:
        parts.append(f"eta {mitigation['eta']:g}")
    return " ".join(parts)


def _accuracies(accuracy: pd.Series, n: pd.Series, minority: pd.Series) -> dict[str, float]:
    """overall (n-weighted), worst-group and minority (n-weighted over the minority groups) accuracy."""
    weights = n.where(minority, 0)
    return {"overall_accuracy": float((accuracy * n).sum() / n.sum()), "worst_group_accuracy": float(accuracy.min()),
            "minority_accuracy": float((accuracy * weights).sum() / weights.sum()) if weights.sum() else float("nan")}


def _pareto(cost: pd.Series, value: pd.Series) -> list[bool]:
    """Whether each point is on the front of low ``cost`` and high ``value``: no other point has cost <= and
    value >= with one of them strict (NaN values are never on the front)."""
    points = list(zip(cost, value))
    return [pd.notna(v) and not any(pd.notna(v2) and c2 <= c and v2 >= v and (c2 < c or v2 > v) for c2, v2 in points)
            for c, v in points]


def load_results(folder: str | Path, *, lazy: bool = True) -> AuditResults:
    """Read a folder written by :meth:`AuditResults.save` (``NAME.parquet`` tables, or the older ``NAME.csv``;
    Parquet is preferred where both exist); FairLinError naming what is missing or broken. ``lazy``: read
    density and attributions on first access (a FairLinError then if their file changed since)."""
    folder = Path(folder)
    files = {name: _table_file(folder, name) for name in TABLES}
    missing = [f"{name}.parquet" for name, path in files.items() if path is None]
    missing += [f"{n}.json" for n in ("configs", "meta") if not (folder / f"{n}.json").is_file()]
    if missing:
        raise FairLinError(f"{folder} is not an audit results folder: {', '.join(missing)} missing (tables may "
                           f"also be the older NAME.csv); expected the files written by "
                           f"`python -m fairlin_core default-audit`")
    tables: dict[str, pd.DataFrame | LazyTable] = {}
    for name, path in files.items():
        if lazy and name in LAZY_TABLES:
            tables[name] = LazyTable(functools.partial(_read_unchanged, path, name, _stamp(path)))
        else:
            tables[name] = _read_table(path, name)
    configs, meta = (read_json(folder / f"{name}.json", MAX_JSON_BYTES, "audit results file", "the JSON written with "
                               "the results (regenerate it with `python -m fairlin_core default-audit`)")
                     for name in ("configs", "meta"))
    group_sizes = tables.pop("group_sizes")
    return AuditResults.from_tables(tables, group_sizes=group_sizes, configs=configs, meta=meta)


def _table_file(folder: Path, name: str) -> Path | None:
    for suffix in (".parquet", ".csv"):
        path = folder / f"{name}{suffix}"
        if path.is_file():
            return path
    return None


def _read_table(path: Path, name: str) -> pd.DataFrame:
    """One table file, read through the input guard (a regular file of at most :data:`MAX_TABLE_BYTES`)."""
    with open_regular(path, MAX_TABLE_BYTES, "audit results table") as handle:
        try:
            if path.suffix == ".parquet":
                return pd.read_parquet(handle)
            return pd.read_csv(handle, dtype={c: t for c, t in TEXT_COLUMNS.items() if c in COLUMNS[name]})
        except (ValueError, OSError, pd.errors.ParserError) as error:  # pyarrow's ArrowInvalid is a ValueError
            raise _damaged(path.parent, error) from None


def _stamp(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _read_unchanged(path: Path, name: str, stamp: tuple[int, int]) -> pd.DataFrame:
    """A lazy table's read: refused when the file is not the one the other tables were read with."""
    try:
        same = _stamp(path) == stamp
    except OSError:
        same = False
    if not same:
        raise FairLinError(f"{path} changed (or went away) after the other tables of {path.parent} were loaded; "
                           f"load the results again")
    return _read_table(path, name)


def _damaged(folder: Path, error: Exception) -> FairLinError:
    return FairLinError(f"{folder} holds a damaged audit results file ({error}); regenerate it with "
                        f"`python -m fairlin_core default-audit`")


def _shaped_lazily(table: pd.DataFrame | LazyTable | None, name: str) -> pd.DataFrame | LazyTable:
    if isinstance(table, LazyTable):
        load = table.load
        return LazyTable(lambda: _shaped(load(), name))
    return _shaped(table, name)


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
    from ..linearizers import resolve_budget
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
                     "mu": lagrangian_mu(mitigation),
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
            "model": sidecar.get("model"),
            "source": f"run store {store.root}"}
    return AuditResults.from_tables(tables, group_sizes=bundle.group_sizes()[["split", "group", "n"]],
                                    configs=configs, meta=meta)
