"""The views the dashboard's "who pays" presentation needs, on the shipped default audit (digits, 90% of
digits 0-4 / 20% of 5-9 in training): group classes, the majority-vs-minority aggregate, the headline, base
accuracy intervals, the bound's rank agreement, mean inputs, protocols; and their readable tables."""

import re

import numpy as np
import pytest

from fairlin_core.audits.results import CLASS_RULE, SHIPPED_AUDIT, load_results
from fairlin_core.metrics.fairness import bootstrap_accuracy
from fairlin_core.runtime import format_interval
from fairlin_core.viz import audit_figures, tables
from fairlin_core.viz.report import audit_report_html


@pytest.fixture(scope="module")
def shipped():
    return load_results(SHIPPED_AUDIT)


def test_groups_are_classed_by_training_share_with_one_rule(shipped):
    classes = shipped.group_classes()
    assert list(classes["group"]) == [str(d) for d in range(10)]
    assert list(classes["group_class"]) == ["majority"] * 5 + ["minority"] * 5
    assert classes["train_share"].sum() == pytest.approx(1.0)
    assert shipped.minority_groups() == ["5", "6", "7", "8", "9"]  # the cost front's minority: the same rule
    assert "below an equal share" in CLASS_RULE
    assert shipped.default_split() == "balanced"


def test_class_drop_aggregates_each_class_per_run_then_across_seeds(shipped):
    table = shipped.class_drop("balanced", "none")
    assert list(dict.fromkeys(table["method"])) == ["snl", "deepreduce", "random"]
    cell = table[(table["method"] == "snl") & (table["budget"] == "0.5%")].set_index("group_class")
    assert cell.loc["minority", "drop_mean"] > cell.loc["majority", "drop_mean"] + 2  # the paper's finding
    assert (cell["n_seeds"] == 3).all() and (cell["drop_ci_low"] < cell["drop_mean"]).all()
    # by hand: per seed, the class accuracy is test-n-weighted over its groups
    rows = shipped.frame("balanced")
    rows = rows[(rows["method"] == "snl") & (rows["budget"] == "0.5%") & (rows["mitigation"] == "none")
                & rows["group"].isin(["5", "6", "7", "8", "9"])]
    per_seed = rows.groupby("seed").apply(lambda r: 100 * (1 - (r["accuracy"] * r["n"]).sum()
                                                            / (r["base_accuracy"] * r["n"]).sum()),
                                          include_groups=False)
    assert cell.loc["minority", "drop_mean"] == pytest.approx(per_seed.mean())
    assert cell.loc["minority", "n"] == rows.drop_duplicates("group")["n"].sum()


def test_the_headline_is_measured_from_the_results(shipped):
    headline = shipped.headline("balanced")
    cell = shipped.class_drop("balanced", "none").query("method == 'snl' and budget == '0.5%'") \
        .set_index("group_class")
    assert headline["budget"] == "0.5%" and headline["method"] == "snl"
    assert headline["minority"]["mean"] == pytest.approx(cell.loc["minority", "drop_mean"])
    expected = format_interval(cell.loc["minority", "drop_mean"], cell.loc["minority", "drop_ci_low"],
                               cell.loc["minority", "drop_ci_high"])
    assert f"the minority groups lose {expected}%" in headline["text"]
    assert headline["worst_group"] in shipped.minority_groups()


def test_bootstrap_intervals_cover_the_accuracy_and_shrink_with_n():
    low, high = bootstrap_accuracy([0.9, 0.9, 1.0, 0.5], [10, 1000, 50, 0])
    assert low[0] < 0.9 < high[0] and (high[1] - low[1]) < (high[0] - low[0]) / 5
    assert low[2] == high[2] == 1.0 and np.isnan(low[3])


def test_base_accuracy_per_group_carries_n_and_an_interval(shipped):
    table = shipped.base_accuracy("balanced")
    assert list(table["group"]) == [str(d) for d in range(10)] and table["n"].between(50, 60).all()
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()


def test_bound_agreement_uses_spearman_across_groups(shipped):
    from scipy.stats import spearmanr
    agreement = shipped.bound_agreement("snl", "0.5%")
    rows = shipped.diagnostics_by_budget("snl", "none").query("budget == '0.5%'")
    assert agreement["n_groups"] == 10
    assert agreement["spearman"] == pytest.approx(spearmanr(rows["bound"], rows["excess_loss"]).statistic)
    assert agreement["median_ratio"] > 10 and "loose" in agreement["text"] and "ρ =" in agreement["text"]


def test_mean_inputs_come_from_the_dataset_of_the_base_checkpoint(shipped):
    inputs = shipped.mean_inputs("test")
    assert set(inputs["group"]) == set(shipped.group_names) and len(inputs) == 10 * 64
    fig = audit_figures.attribution_maps(shipped.run_rows("attributions", shipped.diagnostic_run(
        "snl", "0.5%", "none", "attributions")), "8", (1, 8, 8), "t", mean_input=inputs)
    assert fig.data[0].colorscale[0][1] != fig.data[1].colorscale[0][1] and len(fig.data) == 6


def test_mitigation_effect_has_paired_intervals_across_seeds(shipped):
    effect = shipped.mitigation_effect("balanced", "snl", "lagrangian")
    assert (effect["n_seeds"] == 3).all()
    inside = effect.dropna(subset=["drop_difference_ci_low"])
    assert ((inside["drop_difference_ci_low"] <= inside["drop_difference"] + 1e-9)
            & (inside["drop_difference"] <= inside["drop_difference_ci_high"] + 1e-9)).all()


def test_runs_go_by_their_protocol_and_one_protocol_restricts_nothing(shipped):
    labels = shipped.run_labels()
    assert labels["snl-0.5%-seed1-mit-on"] == "snl 0.5% · seed 1 · finetune 20 ep · SNL 100 ep · lagrangian mu 0.01"
    assert labels["random-1%-seed0-mit-off"] == "random 1% · seed 0 · finetune 20 ep · plain finetune"
    [protocol] = shipped.protocols()
    assert protocol.describe() == "finetune 20 ep · SNL 100 ep · lagrangian mu 0.01"
    assert len(shipped.of_protocol(protocol).runs) == len(shipped.runs)
    assert shipped.mitigations() == {"none": "plain finetune", "lagrangian": "lagrangian mu 0.01"}


def test_readable_tables_print_percent_with_one_decimal_and_intervals():
    assert format_interval(97.14, 95.26, 98.94) == "97.1 [95.3, 98.9]"
    assert format_interval(97.14, float("nan"), float("nan")) == "97.1" and format_interval(float("nan"), 1, 2) == "–"
    assert tables.file_name("audit", "snl", "0.5%") == "audit_snl_0.5pct.csv"


def test_group_colours_split_majority_and_minority_into_two_hue_families():
    colors = audit_figures.group_colors([str(d) for d in range(10)], ["5", "6", "7", "8", "9"])
    assert [colors[str(d)] for d in range(5)] == audit_figures.MAJORITY_COLORS[:5]
    assert [colors[str(d)] for d in range(5, 10)] == audit_figures.MINORITY_COLORS[:5]
    assert audit_figures.GroupStyle.of(list(colors), ["9"], "3").color("4") == audit_figures.MUTED


def _json_unescaped(page: str) -> str:
    """``page`` with JSON's ``\\uXXXX`` escapes decoded: plotly writes figure JSON with orjson when it is installed
    (UTF-8 as is) and with the standard encoder otherwise (non-ASCII as escapes); the text must match either way."""
    return re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), page)


def test_the_report_uses_the_page_figures_fits_the_width_and_states_units(shipped):
    page = _json_unescaped(audit_report_html(shipped, method="snl"))
    assert "Majority vs minority · balanced split" in page
    assert "max-width: 1100px" in page and "overflow-x: auto" in page and '"responsive": true' in page
    assert "percentage points" in page and "Relative drop (%) [95% CI]" in page
    assert shipped.headline("balanced")["text"].split(" (")[0] in page
    assert "0.4g" not in page and "front_worst" not in page.split("Run configurations")[0]
