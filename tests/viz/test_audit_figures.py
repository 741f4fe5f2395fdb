"""Figures of fairlin_core.viz on the shipped default audit: a reference audit is overlaid as its own series,
and the dataset/checkpoint figures follow the audit figures' conventions (group colours, legends below)."""

import pandas as pd
import plotly.io as pio
import pytest

from fairlin_core.audits.results import CLASS_RULE, SHIPPED_AUDIT, classify_groups, load_results
from fairlin_core.viz import audit_figures as figures
from fairlin_core.viz.audit_figures import GroupStyle, _legend_name
from fairlin_core.viz.figures import group_accuracy_figure, group_sizes_figure


@pytest.fixture(scope="module")
def shipped():
    return load_results(SHIPPED_AUDIT)


def _style(results):
    return figures.GroupStyle.of(results.group_names, results.minority_groups())


def test_class_lines_draw_a_reference_as_separate_dashed_series(shipped):
    own = shipped.class_drop("balanced", "off")
    reference = shipped.class_drop("balanced", "on")  # another audit's same view
    plain = figures.class_lines(own, "t", CLASS_RULE)
    fig = figures.class_lines(own, "t", CLASS_RULE, reference=reference, reference_name="shipped audit")
    extra = [t for t in fig.data if "shipped audit" in (t.name or "")]
    kept = [t for t in fig.data if "shipped audit" not in (t.name or "")]
    assert [pio.to_json(t) for t in kept] == [pio.to_json(t) for t in plain.data]  # the results' own, unchanged
    assert len(extra) == 6 and all(t.line.dash == "dash" and t.fill is None for t in extra)  # 3 methods x 2 classes
    assert {t.name for t in extra} == {"majority groups · shipped audit", "minority groups · shipped audit"}
    assert sum(bool(t.showlegend) for t in extra) == 2  # one legend entry per class, not per panel
    snl = next(t for t in extra if t.name.startswith("minority") and t.xaxis == "x")
    expected = reference[(reference["method"] == "snl") & (reference["group_class"] == "minority")]
    assert list(snl.y) == pytest.approx(expected.sort_values("budget_fraction")["drop_mean"].tolist())
    own_snl = next(t for t in plain.data if t.name == "minority groups" and t.xaxis == "x")
    assert list(own_snl.y) != list(snl.y)  # never merged into the results' own line
    methods_only = figures.class_lines(own[own["method"] == "snl"], "t", CLASS_RULE, reference=reference)
    assert {t.xaxis for t in methods_only.data} == {"x"}  # only the panels of the results' own methods


def test_group_bars_mark_the_reference_on_each_groups_bar(shipped):
    own = shipped.group_drop("balanced", "snl", "off")
    own = own[own["budget"].isin(["2%", "1%"])]
    reference = shipped.group_drop("balanced", "snl", "on")
    fig = figures.group_bars(own, _style(shipped), x="budget", y="drop_mean", title="t", y_title="drop", unit="%",
                             reference=reference, reference_name="shipped audit")
    bars = [t for t in fig.data if t.type == "bar"]
    marks = [t for t in fig.data if t.type == "scatter"]
    assert len(bars) == 10 and len(marks) == 10 and fig.layout.scattermode == "group"
    assert all(m.offsetgroup == b.offsetgroup for b, m in zip(bars, marks))  # centred on the group's bar
    assert all(set(m.x) == {"2%", "1%"} for m in marks)  # the reference's other budgets are left out
    assert [bool(m.showlegend) for m in marks] == [True] + [False] * 9 and marks[0].name == "shipped audit"
    on = reference.set_index(["group", "budget"])["drop_mean"]
    assert list(marks[9].y) == pytest.approx([on[("9", b)] for b in marks[9].x])
    assert "%" in bars[0].hovertemplate and "shipped audit" in marks[0].hovertemplate
    assert not [t for t in figures.group_bars(own, _style(shipped), x="budget", y="drop_mean", title="t",
                                              y_title="drop").data if t.type == "scatter"]


def test_checkpoint_and_dataset_figures_use_the_group_colours_and_a_legend_below(shipped):
    style = _style(shipped)
    sizes = shipped.group_sizes
    table = shipped.base_accuracy("balanced").assign(checkpoint="digits_resnet18")
    for fig in (group_accuracy_figure(table, "digits: accuracy per group · balanced split", style),
                group_sizes_figure(sizes, "digits: examples per digit and split", style)):
        legend = fig.layout.legend
        assert legend.orientation == "h" and legend.y < 0 and legend.maxheight == 1
        colors = {t.name.split(" ")[0]: t.marker.color for t in fig.data}
        assert all(colors[g] in figures.MAJORITY_COLORS for g in "01234")
        assert all(colors[g] in figures.MINORITY_COLORS for g in "56789")
        assert colors == {g: style.color(g) for g in shipped.group_names}
    accuracy = group_accuracy_figure(table, "t", style)
    assert "%{y:.1f}%" in accuracy.data[0].hovertemplate and list(accuracy.data[0].y) == pytest.approx(
        [100 * table["accuracy"].iloc[0]])
    split_bars = group_sizes_figure(sizes, "t", style)
    assert list(split_bars.data[0].x) == ["train", "val", "test", "balanced"]


def test_groups_are_classed_by_their_share_of_the_training_set(shipped):
    classes = classify_groups(shipped.group_sizes, shipped.group_names)
    assert classes["group_class"].tolist() == ["majority"] * 5 + ["minority"] * 5
    assert classes.equals(shipped.group_classes())


def test_legend_names_class_each_group_once():
    style = GroupStyle(("majority", "minority"), ("minority",))
    assert _legend_name(pd.Series({"group": "minority", "train_n": 106}), style) == "minority (train n=106)"
    assert _legend_name(pd.Series({"group": "5", "train_n": 21}), GroupStyle(("5",), ("5",))) == "5 (minority, train n=21)"
    assert _legend_name(pd.Series({"group": "3"}), GroupStyle(("3",))) == "3 (majority)"
