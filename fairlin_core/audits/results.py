"""Audit results: the tidy tables of many linearization runs of one base checkpoint, and the views the
audit and diagnostics pages show.

One :class:`AuditResults` holds, whatever produced it (the shipped default audit built by
:mod:`fairlin_core.audits.grid`, or the finished runs of a run store via
:func:`fairlin_core.jobs.results.collect_from_store`):

- ``runs``: one row per run: run_id, method, budget (as requested, text), budget_fraction (of the base
  ReLUs, requested), relu_count, base_relu_count, seed, mitigation (the name of the run's mitigation:
  ``none``, ``lagrangian``, ``reweight``, ``groupdro``; its settings are in the run's recipe),
  configuration (the linearizer's, JSON text), param_distance (||theta_lin - theta_base||, NaN when not
  measured).
- ``groups``: one row per run x split x group: run_id, split, group, n, base_accuracy, accuracy and
  relative_drop (``(base - lin) / base * 100``, percent); accuracies are fractions.
- ``diagnostics``: one row per run x group x model ("base"/"lin"): loss, grad_norm, top_eigenvalue,
  softmax_margin_mean, input_margin_mean, and on the "lin" rows the Theorem 4.4 ``bound`` next to
  the measured ``excess_loss`` (NaN where a diagnostic was not run): the columns each registered diagnostic
  keeps (``Diagnostic.results``), so a newly registered one adds its own.
- ``density``: run_id, group, model, eigenvalue, density (Hessian spectral density on a grid).
- ``attributions``: run_id, group, model, method (saliency / integrated_gradients), element (flat
  input index), value (mean |attribution| over the group's test examples).
- ``group_sizes``: split, group, n (from the dataset, every split incl. train).
- ``configs``: run_id -> the run's configuration: its :class:`~fairlin_core.linearizers.LinearizeRecipe` as
  ``to_dict`` writes it plus ``checkpoint`` and whatever else was recorded (``dataset``, ``shared_masks``,
  ...); older results are read into this shape (:mod:`fairlin_core.audits.migration`). ``meta``: checkpoint,
  dataset, group_attribute, group_names (the order every chart uses), base_relu_count, model (the base
  architecture's spec; absent from older results), how it was made.

Cost estimates are not stored: :meth:`AuditResults.run_costs` prices every run on read (per run and
protocol profile, :mod:`fairlin_core.costs`) from the base architecture (``meta["model"]``, else the base
checkpoint's sidecar) and the run's ReLU count, and :meth:`~AuditResults.cost_front` sets worst-group and
minority accuracy against the estimated latency with the Pareto front across methods and budgets
(:func:`fairlin_core.costs.pareto_front`).

Runs are grouped by recipe: :meth:`AuditResults.protocols` lists the training protocols of the series
(:mod:`fairlin_core.audits.protocols`), :meth:`~AuditResults.of_protocol` narrows the results to one, and
:meth:`~AuditResults.missing_runs` names the recipe each missing cell of a series would run.

The views (:meth:`AuditResults.group_drop`, :meth:`~AuditResults.fairness_summary`, ...) take the current
choices (split, method, mitigation name, budget) and return one tidy DataFrame, aggregated across seeds with a
Student-t 95% interval where they say so: each filters the one tidy per-(run, split, group) frame
(:meth:`AuditResults.frame`) and calls the generic aggregators of :mod:`fairlin_core.audits.frame`; budgets are
ordered from the largest to the smallest, groups in the dataset's order. Results are immutable once built, so
every view is computed once per instance and arguments: a view returns the same DataFrame object on every call,
which callers must not modify in place (filter or copy it; lists are returned as fresh copies).

``save(folder)`` writes one Parquet file per table (``NAME.parquet``) plus ``configs.json`` and
``meta.json``; :func:`load_results` reads them back, and still reads folders of the older ``NAME.csv``
tables (the folder format: :mod:`fairlin_core.audits.results_io`). The two large tables (density,
attributions) are read on first access.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import FairLinError, brief
from ..linearizers import METHODS
from ..linearizers.recipe import NO_MITIGATION, PLAIN_FINETUNE, LinearizeRecipe, describe_mitigation
from .diagnostics.base import result_columns, result_rows
from .frame import INTERVAL, across_seeds, paired_difference, per_run, pooled, tidy_frame, with_relative_drop
from .migration import RECIPE_KEYS, migrate
from .protocols import series
from .results_io import TABLES, LazyTable, read_folder, shaped, shaped_lazily, write_folder

CLASS_RULE = "minority = a group whose share of the training set is below an equal share (1 / number of groups)"
RUN_KEYS = ["method", "budget", "budget_fraction", "mitigation"]
CELL_KEYS = ["budget", "budget_fraction", "group"]
# The shipped default audit (what the dashboard's audit pages open on); $FAIRLIN_AUDIT_RESULTS overrides it.
SHIPPED_AUDIT = Path(os.environ.get("FAIRLIN_AUDIT_RESULTS")
                     or Path(__file__).resolve().parents[2] / "results" / "default_audit")


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
        """Fill absent tables with empty ones, read every run's recipe into today's shape (runs' mitigation
        names and configs, :func:`~fairlin_core.audits.migration.migrate`) and put every table's columns in their
        documented order (a :class:`LazyTable` stays lazy and is shaped when read)."""
        runs = tables.get("runs")
        runs, configs = migrate(shaped(None, "runs") if runs is None else runs, configs, meta)
        tables = {**tables, "runs": runs, "group_sizes": group_sizes}
        return cls(**{name: shaped_lazily(tables.get(name), name) for name in TABLES}, configs=configs, meta=meta)

    @property
    def group_names(self) -> list[str]:
        """Group names in the dataset's order (the order and colours of every chart)."""
        names = self.meta.get("group_names")
        return [str(n) for n in names] if names else list(dict.fromkeys(self.groups["group"]))

    def save(self, folder: str | Path) -> list[Path]:
        """Write the results into ``folder`` (:func:`~fairlin_core.audits.results_io.write_folder`: one Parquet
        file per table plus configs.json and meta.json); returns the paths."""
        tables = {name: getattr(self, name) for name in TABLES}  # read lazy tables before anything is replaced
        return write_folder(folder, tables, self.configs, self.meta)

    # -- views ------------------------------------------------------------------------------------------

    @_view
    def methods(self) -> list[str]:
        """The methods present, in the engine's order (snl, deepreduce, random)."""
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
    def frame(self, split: str | None = None) -> pd.DataFrame:
        """The tidy frame (:func:`~fairlin_core.audits.frame.tidy_frame`): one row per run x split x group, the
        ``groups`` columns plus the run's method, budget, budget_fraction, mitigation, seed, relu_count, protocol
        (its recipe in words) and the group's group_class and train_n; of one ``split``, or of all (None)."""
        if split is not None:
            frame = self.frame()
            return frame[frame["split"] == split]
        recipes = self.run_recipes()
        return tidy_frame(self.runs, self.groups, self.group_classes(),
                          {run_id: recipe.describe() for run_id, recipe in recipes.items()})

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
        rows = self.frame(split)
        rows = rows[(rows["method"] == method) & (rows["mitigation"] == mitigation)]
        table = across_seeds(rows, CELL_KEYS, intervals=["relative_drop", "accuracy"], means=["relu_count"],
                             firsts=["n", "base_accuracy", "train_n"])
        table = table.rename(columns={f"relative_drop_{k}": f"drop_{k}" for k in INTERVAL})
        table["accuracy_ci_low"] = table["accuracy_ci_low"].clip(lower=0.0)
        table["accuracy_ci_high"] = table["accuracy_ci_high"].clip(upper=1.0)
        table["drop_ci_high"] = table["drop_ci_high"].clip(upper=100.0)
        columns = [*CELL_KEYS, "n_seeds", "drop_mean", "drop_std", "drop_ci_low", "drop_ci_high", "accuracy_mean",
                   "accuracy_ci_low", "accuracy_ci_high", "n", "relu_count", "base_accuracy", "train_n"]
        return self._ordered(table[columns]).reset_index(drop=True)

    @_view
    def train_sizes(self) -> pd.DataFrame:
        """group, train_n: the training-set size of every group (what makes a group a minority)."""
        sizes = self.group_sizes
        return sizes[sizes["split"] == "train"][["group", "n"]].rename(columns={"n": "train_n"})

    @_view
    def fairness_summary(self, split: str) -> pd.DataFrame:
        """Per method, budget and mitigation: overall accuracy (n-weighted over groups), worst-group accuracy,
        parity gap (best minus worst group), means across seeds, plus relu_count and n_seeds (methods by name,
        budgets largest first, the unmitigated row first)."""
        runs = per_run(self.frame(split), ["run_id", *RUN_KEYS, "seed", "relu_count"])
        values = ["overall_accuracy", "worst_group_accuracy", "parity_gap"]
        table = across_seeds(runs, RUN_KEYS, means=["relu_count", *values])[[*RUN_KEYS, "relu_count", "n_seeds",
                                                                              *values]]
        return _plain_first(table, ["method", "budget_fraction"], [True, False])

    @_view
    def method_comparison(self, split: str, mitigation: str) -> pd.DataFrame:
        """:meth:`group_drop` of every method stacked with a ``method`` column (filter one budget to compare)."""
        tables = [self.group_drop(split, method, mitigation).assign(method=method) for method in self.methods()]
        return pd.concat(tables, ignore_index=True)

    @_view
    def mitigation_effect(self, split: str, method: str, mitigation: str) -> pd.DataFrame:
        """The paper's Figure 9: per budget and group, relative drop of the plain finetune (mitigation ``none``)
        minus that of ``mitigation`` (a mitigation name; points, positive = mitigation helped), with both drops
        (drop_mean_off, drop_mean_on) and the accuracy difference (means across seeds), and a Student-t 95%
        interval of the difference over the seeds that ran both (drop_difference_ci_low/high, n_seeds)."""
        off = self.group_drop(split, method, NO_MITIGATION)
        on = self.group_drop(split, method, mitigation)
        keys = CELL_KEYS
        table = off[[*keys, "n", "train_n", "drop_mean", "accuracy_mean"]].merge(
            on[[*keys, "drop_mean", "accuracy_mean"]], on=keys, suffixes=("_off", "_on"))
        table["drop_difference"] = table["drop_mean_off"] - table["drop_mean_on"]
        table["accuracy_gain"] = table["accuracy_mean_on"] - table["accuracy_mean_off"]
        rows = self.frame(split)
        interval = paired_difference(rows[rows["method"] == method], "relative_drop", keys, column="mitigation",
                                     minuend=NO_MITIGATION, subtrahend=mitigation)
        interval = interval[[*keys, "n_seeds", "ci_low", "ci_high"]].rename(
            columns={"ci_low": "drop_difference_ci_low", "ci_high": "drop_difference_ci_high"})
        table = table.merge(interval, on=keys, how="left")
        return self._ordered(table).reset_index(drop=True)

    @_view
    def missing_runs(self) -> pd.DataFrame:
        """The cells of every series (:meth:`protocols`) spanned by the methods, budgets, seeds and mitigations
        present in it that have no run, minus the method and budget combinations the results' metadata says were
        skipped: method, budget, seed, mitigation (its name) and recipe (the
        :class:`~fairlin_core.linearizers.LinearizeRecipe` that runs the cell: the series' protocol with that
        method, budget, seed and mitigation, no diagnostics); one row per recipe."""
        columns = ["method", "budget", "seed", "mitigation", "recipe"]
        skipped = {(s["method"], s["budget"]) for s in self.meta.get("skipped", [])}
        rows = {}
        for protocol, members in self.series():
            runs = self.runs[self.runs["run_id"].isin(members)]
            have = set(zip(runs["method"], runs["budget"], runs["seed"], runs["mitigation"]))
            budgets = runs.drop_duplicates("budget").sort_values("budget_fraction", ascending=False)["budget"]
            grid = itertools.product(runs["method"].drop_duplicates(), budgets, sorted(runs["seed"].unique()),
                                     runs["mitigation"].drop_duplicates())
            for method, budget, seed, mitigation in grid:
                if (method, budget, seed, mitigation) in have or (method, budget) in skipped:
                    continue
                recipe = replace(protocol, method=method, budget=budget, seed=int(seed),
                                 mitigation=None if mitigation == NO_MITIGATION else protocol.mitigation).validate()
                rows.setdefault(recipe, {"method": method, "budget": budget, "seed": int(seed),
                                         "mitigation": mitigation, "recipe": recipe})
        return pd.DataFrame(list(rows.values()), columns=columns)

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
        values = result_columns()
        if diag.empty:
            return pd.DataFrame(columns=["budget", "budget_fraction", "group", *values, "accuracy", "n_seeds"])
        accuracy = self.groups[self.groups["split"] == "test"][["run_id", "group", "accuracy", "base_accuracy"]]
        diag = diag.merge(accuracy, on=["run_id", "group"], how="left")
        lin = across_seeds(diag[diag["model"] == "lin"], CELL_KEYS, means=[*values, "accuracy"])
        base = across_seeds(diag[diag["model"] == "base"], ["group"],
                            means=[*values, "base_accuracy"]).rename(columns={"base_accuracy": "accuracy"})
        columns = ["group", *values, "accuracy", "n_seeds"]
        base = base[columns].assign(budget="base", budget_fraction=1.0)
        lin = lin[[*CELL_KEYS, *values, "accuracy", "n_seeds"]]
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
    def run_recipes(self) -> dict[str, LinearizeRecipe]:
        """run_id -> the run's :class:`~fairlin_core.linearizers.LinearizeRecipe` (from its config), in the runs'
        order (the dict is shared: do not modify it)."""
        return {run_id: LinearizeRecipe.from_dict({k: v for k, v in self.configs[run_id].items() if k in RECIPE_KEYS})
                for run_id in self.runs["run_id"]}

    @_view
    def series(self) -> list[tuple[LinearizeRecipe, list[str]]]:
        """The series of these runs (:func:`fairlin_core.audits.protocols.series`): (protocol, run ids) each."""
        return series(self.run_recipes())

    def protocols(self) -> list[LinearizeRecipe]:
        """The training protocols of the series, each as a recipe (its method ``snl`` where snl runs are in it,
        budget, seed and diagnostics at their defaults; :meth:`~LinearizeRecipe.describe` is its label). One
        protocol (or none) means every run is in the one series: :meth:`of_protocol` would keep them all."""
        return [protocol for protocol, _ in self.series()]

    @_view
    def of_protocol(self, protocol: LinearizeRecipe) -> AuditResults:
        """These results narrowed to the runs of one series (a protocol of :meth:`protocols`: its runs of every
        method, and the unmitigated twins of a mitigated protocol), as a new :class:`AuditResults`."""
        members = dict(self.series()).get(protocol)
        if members is None:
            raise FairLinError(f"no series of training protocol {brief(protocol.describe())}; expected one of "
                               f"{', '.join(p.describe() for p in self.protocols())}")
        keep = set(members)
        narrowed = {name: getattr(self, name) for name in ("runs", "groups", "diagnostics", "density",
                                                             "attributions")}
        tables = {name: table[table["run_id"].isin(keep)] for name, table in narrowed.items()}
        return AuditResults.from_tables(tables, group_sizes=self.group_sizes,
                                        configs={r: c for r, c in self.configs.items() if r in keep}, meta=self.meta)

    def run_labels(self) -> dict[str, str]:
        """run_id -> the name a run goes by instead of its id: "snl 1% · seed 0 · finetune 20 ep · SNL 100 ep ·
        lagrangian mu 0.01" (method, budget, seed, :meth:`LinearizeRecipe.describe`)."""
        recipes = self.run_recipes()
        return {run.run_id: f"{run.method} {run.budget} · seed {int(run.seed)} · {recipes[run.run_id].describe()}"
                for run in self.runs.itertuples(index=False)}

    @_view
    def mitigations(self) -> dict[str, str]:
        """The mitigation names present (``none`` first, then by name) -> how they read: "plain finetune" for
        none, else the mitigation's description when its runs share one setting ("lagrangian mu 0.01"), else
        its name."""
        settings: dict[str, set[str]] = {}
        for recipe in self.run_recipes().values():
            settings.setdefault(recipe.mitigation_name, set()).add(describe_mitigation(recipe.mitigation))
        names = sorted(settings, key=lambda name: (name != NO_MITIGATION, name))
        return {name: PLAIN_FINETUNE if name == NO_MITIGATION else next(iter(settings[name]))
                if len(settings[name]) == 1 else name for name in names}

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
        rows = self.frame(split)
        rows = rows[(rows["mitigation"] == mitigation) & (rows["n"] > 0)]
        keys = ["method", "budget", "budget_fraction", "group_class"]
        runs = pooled(rows, [*keys, "run_id", "seed", "relu_count"])
        columns = [*keys, "relu_count", "n", "n_seeds", "drop_mean", "drop_ci_low", "drop_ci_high",
                   "accuracy_mean", "base_accuracy"]
        if runs.empty:
            return pd.DataFrame(columns=columns)
        table = across_seeds(runs.rename(columns={"accuracy": "accuracy_mean"}), keys, intervals=["relative_drop"],
                             means=["relu_count", "accuracy_mean"], firsts=["n", "base_accuracy"])
        table = table.rename(columns={f"relative_drop_{k}": f"drop_{k}" for k in INTERVAL})
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
        table = self.class_drop(split, NO_MITIGATION)
        table = table[table["method"] == method]
        if table.empty or set(table["group_class"]) != {"minority", "majority"}:
            return {}
        budget = self.budgets(method)[-1]
        cells = table[table["budget"] == budget].set_index("group_class")
        groups = self.group_drop(split, method, NO_MITIGATION)
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
    def bound_agreement(self, method: str, budget: str, mitigation: str = NO_MITIGATION) -> dict[str, Any]:
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
        from ..costs import base_cost, pareto_front
        rows = self.frame(split)
        rows = rows[rows["n"] > 0]
        costs = self.run_costs(profile).drop(columns=["profile", "relu_count"])
        runs = per_run(rows, ["run_id", *RUN_KEYS, "seed", "relu_count"]).merge(costs, on="run_id",
                                                                              validate="one_to_one")
        values = ["relu_count", "online_latency_s", "offline_latency_s", "total_latency_s", "online_mb", "offline_mb",
                  "overall_accuracy", "worst_group_accuracy", "minority_accuracy"]
        table = across_seeds(runs, RUN_KEYS, means=values)
        base_model = rows.drop_duplicates("group")
        base_model = per_run(base_model.assign(run_id="base", accuracy=base_model["base_accuracy"])).iloc[0]
        base = {"method": "base", "budget": "100%", "budget_fraction": 1.0, "mitigation": NO_MITIGATION,
                "n_seeds": int(rows["seed"].nunique()), **base_model[values[-3:]].to_dict()}
        base.update({k: v for k, v in base_cost(self.model_spec(), profile).items() if k in values})
        table = pd.concat([pd.DataFrame([base]), table], ignore_index=True)
        for accuracy, column in (("worst_group_accuracy", "front_worst"), ("minority_accuracy", "front_minority")):
            table[column] = pareto_front(table["online_latency_s"], table[accuracy])
        return table[["method", "budget", "budget_fraction", "mitigation", "n_seeds", *values, "front_worst",
                      "front_minority"]].sort_values(["online_latency_s", "method"]).reset_index(drop=True)

    @_view
    def parameter_distances(self) -> pd.DataFrame:
        """method, mitigation, budget, budget_fraction, relu_count, param_distance (mean over the seeds that
        measured it)."""
        runs = self.runs.dropna(subset=["param_distance"])
        table = runs.groupby(["method", "mitigation", "budget", "budget_fraction"], sort=False).agg(
            relu_count=("relu_count", "mean"), param_distance=("param_distance", "mean")).reset_index()
        return _plain_first(table, ["method"], [True], then=("budget_fraction",), then_ascending=(False,))

    @_view
    def diagnostic_run(self, method: str, budget: str, mitigation: str = NO_MITIGATION,
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


def _plain_first(table: pd.DataFrame, by: list[str], ascending: list[bool], *, then: tuple[str, ...] = (),
                 then_ascending: tuple[bool, ...] = ()) -> pd.DataFrame:
    """``table`` sorted by ``by``, then the unmitigated rows (mitigation ``none``) before the mitigated ones (by
    name), then by ``then``; a fresh index."""
    keys = {"_plain": table["mitigation"] != NO_MITIGATION}
    return table.assign(**keys).sort_values([*by, "_plain", "mitigation", *then],
                                            ascending=[*ascending, True, True, *then_ascending]) \
        .drop(columns="_plain").reset_index(drop=True)


def load_results(folder: str | Path, *, lazy: bool = True) -> AuditResults:
    """The results saved in ``folder`` (by :meth:`AuditResults.save`, or older: CSV tables, sparse or no
    configs), through :func:`~fairlin_core.audits.results_io.read_folder`; FairLinError naming what is missing or
    broken. ``lazy``: read density and attributions on first access."""
    tables, configs, meta = read_folder(folder, lazy=lazy)
    group_sizes = tables.pop("group_sizes")
    return AuditResults.from_tables(tables, group_sizes=group_sizes, configs=configs, meta=meta)


# -- building rows from one run ---------------------------------------------------------------------

def run_groups(run_id: str, evaluations: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """``groups`` rows of one run from a result's evaluations ({"base"|"finetuned": {split: evaluation}})."""
    rows = []
    for split, evaluation in evaluations["finetuned"].items():
        base = {g["group"]: g["accuracy"] for g in evaluations["base"][split]["groups"]}
        for group in evaluation["groups"]:
            rows.append({"run_id": run_id, "split": split, "group": str(group["group"]), "n": group["n"],
                         "base_accuracy": base[group["group"]], "accuracy": group["accuracy"]})
    return with_relative_drop(pd.DataFrame(rows))


def audit_rows(run_id: str, audit: dict[str, Any]) -> dict[str, pd.DataFrame]:
    """``diagnostics``, ``density`` and ``attributions`` rows of one run from a :func:`run_audit` result
    (or the diagnostics tables of a stored run, keyed by name)."""
    out: dict[str, pd.DataFrame] = {}
    diagnostics = result_rows(audit)
    if diagnostics is not None:
        out["diagnostics"] = diagnostics.assign(run_id=run_id, group=diagnostics["group"].astype(str))
    if "density" in audit:
        out["density"] = audit["density"][["group", "model", "eigenvalue", "density"]].assign(run_id=run_id)
    if "attr" in audit:
        out["attributions"] = audit["attr"][["group", "model", "method", "element", "value"]].assign(run_id=run_id)
    for name in ("density", "attributions"):
        if name in out:
            out[name]["group"] = out[name]["group"].astype(str)
    return out
