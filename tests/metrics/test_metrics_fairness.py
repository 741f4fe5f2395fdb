"""Accuracy disparity: fairlearn-equal per-group accuracy, relative drop, bootstrap coverage, seed intervals."""

import numpy as np
import pandas as pd
import pytest
from fairlearn.metrics import MetricFrame
from scipy import stats
from sklearn.metrics import accuracy_score

from fairlin_core.metrics.fairness import (bootstrap_accuracy_drop, bootstrap_group_accuracy, parity_gap,
                                           relative_accuracy_drop, seed_summary, worst_group_accuracy)

NAMES = ["a", "b", "c"]


def synthetic(seed=0, sizes=(200, 60, 30), accuracies=(0.9, 0.75, 0.6)):
    rng = np.random.default_rng(seed)
    groups = np.concatenate([np.full(n, g) for g, n in enumerate(sizes)])
    y_true = rng.integers(0, 4, len(groups))
    correct = rng.random(len(groups)) < np.array(accuracies)[groups]
    y_pred = np.where(correct, y_true, (y_true + 1) % 4)
    return y_true, y_pred, groups


def test_per_group_accuracy_equals_fairlearn():
    y_true, y_pred, groups = synthetic()
    y_lin = np.where(np.random.default_rng(1).random(len(y_true)) < 0.1, (y_true + 2) % 4, y_pred)
    frame = MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_pred, sensitive_features=groups)
    table = bootstrap_group_accuracy(y_true, y_pred, groups, NAMES, n_boot=50)
    np.testing.assert_array_equal(table["accuracy"].to_numpy(), frame.by_group.to_numpy())
    drop = bootstrap_accuracy_drop(y_true, y_pred, y_lin, groups, NAMES, n_boot=50)
    np.testing.assert_array_equal(drop["accuracy_base"].to_numpy(), frame.by_group.to_numpy())
    lin_frame = MetricFrame(metrics=accuracy_score, y_true=y_true, y_pred=y_lin, sensitive_features=groups)
    np.testing.assert_array_equal(drop["accuracy_lin"].to_numpy(), lin_frame.by_group.to_numpy())


def test_relative_drop_worst_group_and_gap():
    base = pd.DataFrame({"group": NAMES, "group_index": [0, 1, 2], "n": [10, 5, 0],
                         "accuracy": [0.8, 0.5, np.nan]})
    lin = base.assign(accuracy=[0.6, 0.5, np.nan])
    table = relative_accuracy_drop(base, lin)
    assert table["relative_drop"].iloc[:2].tolist() == pytest.approx([25.0, 0.0])
    assert np.isnan(table["relative_drop"].iloc[2])
    assert worst_group_accuracy(base) == 0.5 and worst_group_accuracy(lin) == 0.5
    assert parity_gap(base) == pytest.approx(0.3) and parity_gap(lin) == pytest.approx(0.1)
    zero = relative_accuracy_drop(base.assign(accuracy=[0.0, 0.5, np.nan]), lin)
    assert np.isnan(zero["relative_drop"].iloc[0])


def test_bootstrap_intervals_cover_the_true_accuracy():
    true = np.array([0.9, 0.75, 0.6])
    sizes = np.array([200, 60, 30])
    hits, widths = np.zeros(3), np.zeros(3)
    repetitions = 100
    for rep in range(repetitions):
        y_true, y_pred, groups = synthetic(seed=rep, sizes=tuple(sizes), accuracies=tuple(true))
        table = bootstrap_group_accuracy(y_true, y_pred, groups, NAMES, n_boot=300, seed=rep)
        hits += (table["ci_low"].to_numpy() <= true) & (true <= table["ci_high"].to_numpy())
        widths += (table["ci_high"] - table["ci_low"]).to_numpy() / repetitions
    coverage = hits / repetitions
    assert np.all(coverage >= 0.85) and np.all(coverage <= 0.995), coverage
    normal_width = 2 * 1.96 * np.sqrt(true * (1 - true) / sizes)  # intervals are neither degenerate nor huge
    assert np.all(widths > 0.7 * normal_width) and np.all(widths < 1.3 * normal_width), (widths, normal_width)


def test_bootstrap_is_seeded_and_paired():
    y_true, y_pred, groups = synthetic()
    a = bootstrap_accuracy_drop(y_true, y_pred, y_pred, groups, NAMES, n_boot=100, seed=3)
    b = bootstrap_accuracy_drop(y_true, y_pred, y_pred, groups, NAMES, n_boot=100, seed=3)
    pd.testing.assert_frame_equal(a, b)
    # identical models: every paired replicate has zero drop, so the interval collapses to 0
    assert (a["relative_drop_low"] == 0).all() and (a["relative_drop_high"] == 0).all()
    assert (a["accuracy_base_low"] < a["accuracy_base_high"]).all()


def test_empty_group_in_bootstrap():
    y_true, y_pred, groups = synthetic()
    table = bootstrap_group_accuracy(y_true, y_pred, groups, [*NAMES, "d"], n_boot=20)
    assert table.loc[3, "n"] == 0 and np.isnan(table.loc[3, "ci_low"])


def test_seed_summary_t_interval():
    frame = pd.DataFrame({"group": ["a"] * 4 + ["b"], "seed": [0, 1, 2, 3, 0],
                          "relative_drop": [1.0, 2.0, 4.0, 5.0, 7.0]})
    table = seed_summary(frame, "relative_drop")
    row = table[table["group"] == "a"].iloc[0]
    values = [1.0, 2.0, 4.0, 5.0]
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert row["mean"] == 3.0 and row["n_seeds"] == 4
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    single = table[table["group"] == "b"].iloc[0]
    assert single["mean"] == 7.0 and np.isnan(single["ci_low"])


def test_bootstrap_intervals_bracket_the_accuracy_and_narrow_with_group_size():
    y_true, y_pred, groups = synthetic(sizes=(2000, 200, 40), accuracies=(0.75, 0.75, 0.75))
    table = bootstrap_group_accuracy(y_true, y_pred, groups, NAMES, n_boot=400)
    assert (table["ci_low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["ci_high"]).all()
    width = (table["ci_high"] - table["ci_low"]).to_numpy()
    assert width[0] < width[1] < width[2]  # same accuracy, fewer samples: a wider interval
    assert width[0] > 0