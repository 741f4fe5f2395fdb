"""The audit grid (default-audit), the tidy audit results, their views, figures and the HTML report, on the
shipped digits checkpoint with tiny settings, and the same tables collected from a real run store."""

import dataclasses
import json
import math
import shutil

import pandas as pd
import pytest

from fairlin_core.viz import audit_figures
from fairlin_core.audits.grid import AuditGrid
from fairlin_core.audits.results import SHIPPED_AUDIT
from fairlin_core.cli import main
from fairlin_core.errors import FairLinError
from fairlin_core.jobs import JobManager, RunStore, collect_from_store
from fairlin_core.viz.report import audit_report_html
from fairlin_core.audits.results import load_results
from fairlin_core.audits.results_io import LAZY_TABLES, TABLES
from conftest import DIGITS, TOY, job_config

GRID = ["--checkpoint", DIGITS, "--methods", "random,deepreduce", "--budgets", "2%,1%", "--seeds", "0,1",
        "--finetune-epochs", "2", "--snl-epochs", "2", "--diagnostics", "grad,boundary", "--detail", "attr"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit")
    assert main(["default-audit", *GRID, "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def results(built):
    return load_results(built)


@pytest.mark.slow  # these use the grid that the `built` fixture runs through the CLI (~1 min on 2 cores)
def test_grid_runs_every_cell_once_and_skips_deepreduce_duplicates(results):
    runs = results.runs
    random = runs[runs["method"] == "random"]
    assert len(random) == 2 * 2 * 2  # budgets x seeds x mitigation
    assert set(zip(random["budget"], random["seed"], random["mitigation"])) == {
        (b, s, m) for b in ("2%", "1%") for s in (0, 1) for m in ("none", "lagrangian")}
    # 2% and 1% of 7,680 ReLUs both map to DeepReDuce's smallest configuration (128 ReLUs): run once
    deepreduce = runs[runs["method"] == "deepreduce"]
    assert set(deepreduce["budget"]) == {"2%"} and set(deepreduce["relu_count"]) == {128}
    [skipped] = results.meta["skipped"]
    assert (skipped["method"], skipped["budget"]) == ("deepreduce", "1%")
    assert "128 ReLUs" in skipped["reason"] and "budget 2%" in skipped["reason"]
    assert set(random["relu_count"]) == {154, 77}
    assert results.group_names == [str(d) for d in range(10)]
    assert results.meta["input_shape"] == [1, 8, 8]


@pytest.mark.slow
def test_groups_table_is_consistent_with_the_base_model_and_relative_drop(results):
    groups = results.groups
    assert set(groups["split"]) == {"test", "balanced"}
    test = groups[groups["split"] == "test"]
    assert len(test) == len(results.runs) * 10
    # every run is measured against the same base model
    base = test.groupby("group")["base_accuracy"].nunique()
    assert (base == 1).all()
    row = test[test["base_accuracy"] > 0].iloc[0]
    assert row["relative_drop"] == pytest.approx((row["base_accuracy"] - row["accuracy"]) / row["base_accuracy"] * 100,
                                                 rel=1e-5, abs=1e-5)  # stored with 7 significant digits
    # test split group sizes: the imbalanced protocol keeps fewer of classes 5-9
    sizes = results.group_sizes[results.group_sizes["split"] == "train"].set_index("group")["n"]
    assert sizes["0"] > 3 * sizes["9"]


@pytest.mark.slow
def test_diagnostics_only_on_the_diagnostic_seed_and_detail_only_unmitigated(results):
    with_diag = set(results.diagnostics["run_id"])
    seeds = results.runs.set_index("run_id").loc[sorted(with_diag), "seed"]
    assert set(seeds) == {0}
    assert len(with_diag) == len(results.runs[results.runs["seed"] == 0])
    lin = results.diagnostics[results.diagnostics["model"] == "lin"]
    assert lin["grad_norm"].gt(0).all() and lin["input_margin_mean"].gt(0).all()
    assert lin["top_eigenvalue"].isna().all() and lin["bound"].isna().all()  # not asked for (slow; see test_metrics_*)
    attribution_runs = set(results.attributions["run_id"])
    assert results.density.empty
    assert set(results.runs.set_index("run_id").loc[sorted(attribution_runs), "mitigation"]) == {"none"}
    one = results.attributions[results.attributions["run_id"] == sorted(attribution_runs)[0]]
    assert one.groupby(["group", "model", "method"]).size().eq(64).all()  # an 8x8 map per group, model, method
    assert results.runs["param_distance"].notna().sum() == len(with_diag)


@pytest.mark.slow
def test_rebuilding_resumes_from_the_chunks_without_recomputing(built, results):
    before = {p: p.stat().st_mtime_ns for p in (built / "chunks").rglob("*.csv")}
    assert main(["default-audit", *GRID, "--out", str(built)]) == 0
    assert {p: p.stat().st_mtime_ns for p in (built / "chunks").rglob("*.csv")} == before
    pd.testing.assert_frame_equal(load_results(built).groups, results.groups)


@pytest.mark.slow
def test_a_different_grid_in_the_same_folder_is_refused(built, capsys):
    assert main(["default-audit", *GRID[:-4], "--finetune-epochs", "3", "--out", str(built)]) == 2
    assert "different audit grid" in capsys.readouterr().err


def test_cli_rejects_bad_seeds_and_methods(tmp_path, capsys):
    assert main(["default-audit", "--seeds", "a,b", "--out", str(tmp_path)]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
    with pytest.raises(FairLinError, match="unknown method"):
        AuditGrid(checkpoint=DIGITS, methods=("magic",)).validate()


@pytest.mark.slow
def test_damaged_results_folder_is_a_clear_error(tmp_path, built):
    with pytest.raises(FairLinError, match="not an audit results folder: runs.parquet, groups.parquet"):
        load_results(tmp_path)


@pytest.mark.slow
def test_views_aggregate_across_seeds(results):
    drop = results.group_drop("test", "random", "none")
    assert set(drop["budget"]) == {"2%", "1%"} and list(drop["group"].unique()) == [str(d) for d in range(10)]
    assert (drop["n_seeds"] == 2).all()
    cell = drop[(drop["budget"] == "1%") & (drop["group"] == "9")].iloc[0]
    raw = results.frame("test")
    raw = raw.query("method == 'random' and mitigation == 'none' and budget == '1%' and group == '9'")
    assert cell["drop_mean"] == pytest.approx(raw["relative_drop"].mean())
    assert cell["accuracy_mean"] == pytest.approx(raw["accuracy"].mean())
    assert 0 <= cell["accuracy_ci_low"] <= cell["accuracy_mean"] <= cell["accuracy_ci_high"] <= 1
    assert cell["train_n"] == 21

    summary = results.fairness_summary("test")
    row = summary.query("method == 'random' and budget == '1%' and mitigation == 'none'").iloc[0]
    test = results.frame("test")
    test = test[(test["method"] == "random") & (test["budget"] == "1%") & (test["mitigation"] == "none")]
    assert row["worst_group_accuracy"] == pytest.approx(test.groupby("seed")["accuracy"].min().mean())
    assert row["parity_gap"] == pytest.approx((test.groupby("seed")["accuracy"].max()
                                               - test.groupby("seed")["accuracy"].min()).mean())

    effect = results.mitigation_effect("test", "random", "lagrangian")
    on = results.group_drop("test", "random", "lagrangian")
    merged = effect.merge(on[["budget", "group", "drop_mean"]], on=["budget", "group"])
    assert merged["drop_difference"].to_numpy() == pytest.approx(
        (merged["drop_mean_off"] - merged["drop_mean"]).to_numpy(), nan_ok=True)

    compared = results.method_comparison("test", "none")
    compared = compared[compared["budget"] == "2%"]
    assert results.methods() == ["deepreduce", "random"]
    assert set(compared["method"]) == {"deepreduce", "random"}
    assert results.budgets() == ["2%", "1%"]
    assert results.missing_runs().empty  # the skipped deepreduce budget is not "missing"


@pytest.mark.slow
def test_missing_runs_lists_the_holes_of_the_grid(results):
    runs = results.runs[~((results.runs["method"] == "random") & (results.runs["seed"] == 1)
                          & (results.runs["budget"] == "1%"))]
    partial = dataclasses.replace(results, runs=runs)
    missing = partial.missing_runs()
    assert missing.drop(columns="recipe").to_dict("records") == [
        {"method": "random", "budget": "1%", "seed": 1, "mitigation": m} for m in ("none", "lagrangian")]
    # each cell would run the grid's recipe: its epochs, its lagrangian, no diagnostics
    plain, mitigated = missing["recipe"]
    assert (plain.finetune.epochs, plain.mitigation, plain.budget, plain.seed) == (2, None, "1%", 1)
    assert mitigated.mitigation.method == "lagrangian" and mitigated.mitigation.mu == 0.01
    assert mitigated.method == "random" and mitigated.diagnostics == ()


@pytest.mark.slow
def test_diagnostic_views_put_the_base_model_at_100_percent(results):
    diag = results.diagnostics_by_budget("random", "none")
    assert list(dict.fromkeys(diag["budget"])) == ["base", "2%", "1%"]
    base = diag[diag["budget"] == "base"]
    assert len(base) == 10 and (base["budget_fraction"] == 1.0).all()
    assert base["grad_norm"].gt(0).all() and diag[diag["budget"] != "base"]["grad_norm"].notna().all()
    distances = results.parameter_distances()
    assert (distances["param_distance"] > 0).all()
    run = results.diagnostic_run("random", "1%", "none", "attributions")
    assert run == "random-1%-seed0-mit-off"
    assert results.diagnostic_run("random", "1%", "lagrangian", "attributions") is None
    assert results.diagnostic_run("random", "1%", "none", "density") is None


@pytest.mark.slow
def test_figures_use_one_colour_per_group_everywhere(results):
    names = results.group_names
    style = audit_figures.GroupStyle.of(names, results.minority_groups())
    colors = audit_figures.group_colors(names, results.minority_groups())
    drop = results.group_drop("test", "random", "none")
    bars = audit_figures.group_bars(drop, style, x="budget", y="drop_mean", low="drop_ci_low", high="drop_ci_high",
                                    title="t", y_title="y")
    lines = audit_figures.accuracy_lines(drop, style, "t")
    diag = results.diagnostics_by_budget("random", "none")
    grad = audit_figures.diagnostic_lines(diag, style, "grad_norm", "t", "y", log_y=True)
    for fig in (bars, lines, grad):
        named = [t for t in fig.data if t.showlegend is not False]
        assert len(named) == 10
        for trace, group in zip(named, names):
            color = trace.marker.color if trace.type == "bar" else trace.line.color
            assert color == colors[group] and trace.name.startswith(group)
    assert bars.data[0].name == "0 (majority, train n=96)" and grad.data[0].name == "0 (majority)"
    rows = results.run_rows("attributions", "random-1%-seed0-mit-off")
    attribution = audit_figures.attribution_maps(rows, "9", (1, 8, 8), "t")
    assert [t.z.shape for t in attribution.data] == [(8, 8)] * 4


@pytest.mark.slow
def test_html_report_is_standalone_with_figures_tables_and_configs(results):
    page = audit_report_html(results, split="test", method="random")
    assert page.startswith("<!DOCTYPE html>") and page.count("Plotly.newPlot") >= 4
    assert "https://cdn" not in page.split("</script>")[0]  # plotly.js inlined, works offline
    assert "Summary per method, budget and mitigation" in page and "random-1%-seed1-mit-on" in page
    assert "Run configurations" in page and "&quot;mu&quot;: 0.01" in page


def test_collect_from_store_gives_the_same_tables_for_job_runs(tmp_path):
    assert RunStore(tmp_path / "empty").done_signature() == (0, None)
    manager = JobManager(tmp_path / "store", workers=1)
    try:
        ids = [manager.submit(job_config(TOY, "random", budget, seed=seed, finetune={"epochs": 1},
                                        mitigation=mitigation, diagnostics=["grad"] if seed == 0 else []))
               for budget in (16, 0.25) for seed in (0, 1) for mitigation in (None, {"mu": 0.05})]
        assert manager.wait(ids, timeout=300)
        count, latest = manager.store.done_signature()
        assert count == 8 and latest == max(r["finished"] for r in manager.store.list_runs("done"))
        collected = collect_from_store(manager.store, TOY)
    finally:
        manager.shutdown()
    runs = collected.runs
    assert len(runs) == 8 and set(runs["mitigation"]) == {"none", "lagrangian"}
    # a count (16 of 32 ReLUs) and a fraction (0.25) are both labelled as percentages of the base count
    assert set(runs["budget"]) == {"50%", "25%"}
    assert set(runs["base_relu_count"]) == {32}
    recipes = collected.run_recipes()
    assert {recipes[r].mitigation.mu for r in runs.loc[runs["mitigation"] == "lagrangian", "run_id"]} == {0.05}
    assert collected.group_names == ["majority", "minority"]
    assert set(collected.groups["split"]) >= {"test"}
    assert len(collected.diagnostics) == 4 * 2 * 2  # seed-0 runs x groups x models
    assert math.isfinite(runs.loc[runs["run_id"].isin(collected.diagnostics["run_id"]), "param_distance"].iloc[0])
    drop = collected.group_drop("test", "random", "none")
    assert set(drop["n_seeds"]) == {2}
    assert json.loads(json.dumps(collected.configs[runs["run_id"].iloc[0]]))["method"] == "random"


def test_runs_of_two_mitigation_methods_are_two_protocols_never_one_series(tmp_path):
    """A reweight, a lagrangian and a groupdro run are three protocols, each keeping the plain run, and the runs
    table names the method (its settings in the run's recipe)."""
    manager = JobManager(tmp_path / "store", workers=1)
    try:
        ids = [manager.submit(job_config(TOY, "random", 16, finetune={"epochs": 1}, mitigation=mitigation))
               for mitigation in (None, "reweight", {"method": "lagrangian", "mu": 0.05}, "groupdro")]
        assert manager.wait(ids, timeout=300)
        collected = collect_from_store(manager.store, TOY)
        table = manager.store.runs_table().set_index("id")
    finally:
        manager.shutdown()
    protocols = collected.protocols()
    assert [p.describe() for p in protocols] == ["finetune 1 ep · groupdro eta 0.01",
                                                 "finetune 1 ep · lagrangian mu 0.05", "finetune 1 ep · reweight"]
    for protocol, mitigated in zip(protocols, ids[3:] + ids[2:3] + ids[1:2]):
        narrowed = collected.of_protocol(protocol)
        assert set(narrowed.runs["run_id"]) == {ids[0], mitigated} and narrowed.protocols() == [protocol]
    labels = collected.run_labels()
    assert labels[ids[1]] == "random 50% · seed 0 · finetune 1 ep · reweight"
    assert labels[ids[0]] == "random 50% · seed 0 · finetune 1 ep · plain finetune"
    runs = collected.runs.set_index("run_id")
    assert list(runs.loc[ids, "mitigation"]) == ["none", "reweight", "lagrangian", "groupdro"]
    assert list(table.loc[ids, "mitigation"]) == ["none", "reweight", "lagrangian mu 0.05", "groupdro eta 0.01"]
    assert table.loc[ids[2], "mitigation_mu"] == 0.05 and table.loc[[ids[1], ids[3]], "mitigation_mu"].isna().all()


# -- storage: Parquet tables, the older CSV folders, lazy detail tables, memoised views -------------------

def _csv_folder(results, folder):
    """``results`` as a folder of the older format (one CSV per table, as AuditResults.save wrote it before)."""
    folder.mkdir()
    for name in TABLES:
        getattr(results, name).to_csv(folder / f"{name}.csv", index=False, float_format="%.7g")
    for name in ("configs", "meta"):
        shutil.copy(SHIPPED_AUDIT / f"{name}.json", folder / f"{name}.json")
    return folder


def test_shipped_results_are_parquet_and_an_older_csv_folder_loads_to_equal_frames(tmp_path):
    assert {p.suffix for p in SHIPPED_AUDIT.iterdir()} == {".parquet", ".json"}
    shipped = load_results(SHIPPED_AUDIT, lazy=False)
    assert len(shipped.runs) == 96 and len(shipped.density) and len(shipped.attributions)
    old = load_results(_csv_folder(shipped, tmp_path / "csv"), lazy=False)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(old, name), getattr(shipped, name), obj=name)
    assert old.configs == shipped.configs and old.meta == shipped.meta
    # saving writes Parquet, drops the CSVs it replaces, and reads back equal
    old.save(tmp_path / "csv")
    assert not list((tmp_path / "csv").glob("*.csv"))
    again = load_results(tmp_path / "csv")
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(again, name), getattr(shipped, name), obj=name)


def test_parquet_is_preferred_over_a_csv_of_the_same_table(tmp_path):
    folder = tmp_path / "both"
    shutil.copytree(SHIPPED_AUDIT, folder)
    (folder / "runs.csv").write_text("run_id\nnot-this-one\n")
    pd.testing.assert_frame_equal(load_results(folder).runs, load_results(SHIPPED_AUDIT).runs)


def test_lazy_tables_are_read_on_first_access_and_equal_the_eager_ones(tmp_path):
    eager = load_results(SHIPPED_AUDIT, lazy=False)
    shipped = load_results(SHIPPED_AUDIT)
    old = load_results(_csv_folder(eager, tmp_path / "csv"))
    for lazy in (shipped, old):
        assert not lazy.is_loaded("density") and not lazy.is_loaded("attributions") and lazy.is_loaded("runs")
        for name in LAZY_TABLES:
            pd.testing.assert_frame_equal(getattr(lazy, name), getattr(eager, name), obj=name)
            assert lazy.is_loaded(name) and getattr(lazy, name) is getattr(lazy, name)  # read once
    # a lazy table whose file changed after the others were read is refused, not mixed in
    folder = shutil.copytree(SHIPPED_AUDIT, tmp_path / "changing")
    changing = load_results(folder)
    eager.runs.head(3).to_parquet(folder / "density.parquet")
    with pytest.raises(FairLinError, match="changed .* after the other tables"):
        changing.density
    (folder / "attributions.parquet").write_bytes(b"not parquet")
    with pytest.raises(FairLinError, match="damaged audit results file"):
        load_results(folder, lazy=False)


def test_views_are_memoised_per_results_instance():
    shipped = load_results(SHIPPED_AUDIT)
    drop = shipped.group_drop("test", "snl", "none")
    assert shipped.group_drop("test", "snl", "none") is drop
    assert shipped.group_drop(split="test", method="snl", mitigation="none") is drop  # keyword or positional
    assert shipped.diagnostic_run("snl", "1%") == shipped.diagnostic_run("snl", "1%", "none", "density")
    budgets = shipped.budgets("snl")
    budgets.append("mutated")
    assert shipped.budgets("snl") == ["20%", "10%", "5%", "2%", "1%", "0.5%"]  # lists come back as copies
    fewer = dataclasses.replace(shipped, runs=shipped.runs[shipped.runs["seed"] == 0])
    assert (fewer.group_drop("test", "snl", "none")["n_seeds"] == 1).all()  # a new instance, its own views
    assert (shipped.group_drop("test", "snl", "none")["n_seeds"] == 3).all()


def test_results_files_pass_the_input_guard(tmp_path, monkeypatch):
    """A results folder is user input: a configs.json of 100,000 '[' (a RecursionError before) and a table past
    the size limit are one FairLinError each, naming the file."""
    import fairlin_core.audits.results_io as results_io
    folder = tmp_path / "audit"
    shutil.copytree(SHIPPED_AUDIT, folder)
    assert load_results(folder, lazy=False).runs is not None
    (folder / "configs.json").write_text("[" * 100_000)
    with pytest.raises(FairLinError, match=r"audit results file .*configs\.json is nested 100,000 levels deep"):
        load_results(folder)
    shutil.copyfile(SHIPPED_AUDIT / "configs.json", folder / "configs.json")
    monkeypatch.setattr(results_io, "MAX_TABLE_BYTES", 100)
    with pytest.raises(FairLinError, match=r"audit results table .*runs\.parquet is [\d,]+ bytes; expected a file of "
                                           r"at most 100 bytes"):
        load_results(folder)
