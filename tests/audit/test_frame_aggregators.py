"""The generic aggregators of :mod:`fairlin_core.audits.frame` on a tiny hand-built tidy frame: two recipes
(mitigation none / lagrangian) x three seeds x two groups (one minority), checked against numbers by hand."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from fairlin_core.audits.frame import (across_seeds, budget_fraction, budget_label, paired_difference, per_run, pooled,
                                       tidy_frame)

ACCURACY = {("none", 0): (0.9, 0.5), ("none", 1): (0.8, 0.6), ("none", 2): (0.85, 0.4),
            ("lagrangian", 0): (0.88, 0.7), ("lagrangian", 1): (0.8, 0.65), ("lagrangian", 2): (0.9, 0.6)}


@pytest.fixture
def frame():
    runs, groups = [], []
    for (mitigation, seed), (majority, minority) in ACCURACY.items():
        run_id = f"{mitigation}-{seed}"
        runs.append({"run_id": run_id, "method": "snl", "budget": "1%", "budget_fraction": 0.01,
                     "mitigation": mitigation, "seed": seed, "relu_count": 10 + seed})
        groups += [{"run_id": run_id, "split": "test", "group": "a", "n": 30, "base_accuracy": 1.0,
                    "accuracy": majority},
                   {"run_id": run_id, "split": "test", "group": "b", "n": 10, "base_accuracy": 0.8,
                    "accuracy": minority}]
    groups = pd.DataFrame(groups)
    groups["relative_drop"] = (groups["base_accuracy"] - groups["accuracy"]) / groups["base_accuracy"] * 100
    classes = pd.DataFrame({"group": ["a", "b"], "train_n": [90, 10], "group_class": ["majority", "minority"]})
    return tidy_frame(pd.DataFrame(runs), groups, classes, {r["run_id"]: "finetune 20 ep" for r in runs})


def _t_interval(values):
    values = np.asarray(values, dtype=float)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return values.mean() - half, values.mean() + half


def test_the_tidy_frame_joins_each_group_row_to_its_run_and_class(frame):
    assert len(frame) == 12
    row = frame[(frame["run_id"] == "lagrangian-1") & (frame["group"] == "b")].iloc[0]
    assert (row["mitigation"], row["seed"], row["relu_count"], row["group_class"], row["train_n"],
            row["protocol"]) == ("lagrangian", 1, 11, "minority", 10, "finetune 20 ep")


def test_across_seeds_gives_the_mean_and_student_t_interval_per_cell(frame):
    table = across_seeds(frame, ["mitigation", "group"], intervals=["accuracy"], means=["relu_count"],
                         firsts=["n"])
    assert list(table.columns[:3]) == ["mitigation", "group", "n_seeds"]
    cell = table.set_index(["mitigation", "group"]).loc[("none", "b")]
    values = [ACCURACY["none", s][1] for s in range(3)]
    assert cell["n_seeds"] == 3 and cell["n"] == 10 and cell["relu_count"] == pytest.approx(11)
    assert cell["accuracy_mean"] == pytest.approx(np.mean(values))
    assert (cell["accuracy_ci_low"], cell["accuracy_ci_high"]) == pytest.approx(_t_interval(values))
    plain = across_seeds(frame, ["mitigation"], means=["accuracy"])
    assert list(plain["n_seeds"]) == [3, 3]  # distinct seeds without an interval value


def test_pooled_weighs_groups_by_n_and_recomputes_the_drop(frame):
    table = pooled(frame, ["run_id"]).set_index("run_id")
    assert table.at["none-0", "n"] == 40
    assert table.at["none-0", "accuracy"] == pytest.approx((0.9 * 30 + 0.5 * 10) / 40)
    assert table.at["none-0", "base_accuracy"] == pytest.approx((30 + 0.8 * 10) / 40)
    assert table.at["none-0", "relative_drop"] == pytest.approx((38 / 40 - 32 / 40) / (38 / 40) * 100)


def test_per_run_gives_overall_worst_gap_and_minority_accuracy(frame):
    table = per_run(frame).set_index("run_id")
    assert table.loc["lagrangian-0"].to_dict() == pytest.approx({
        "overall_accuracy": (0.88 * 30 + 0.7 * 10) / 40, "worst_group_accuracy": 0.7, "parity_gap": 0.88 - 0.7,
        "minority_accuracy": 0.7})
    assert per_run(frame.assign(group_class="majority"))["minority_accuracy"].isna().all()


def test_the_paired_interval_is_the_t_interval_of_the_per_seed_differences(frame):
    table = paired_difference(frame, "accuracy", ["group"], column="mitigation", minuend="lagrangian",
                              subtrahend="none").set_index("group")
    differences = [ACCURACY["lagrangian", s][1] - ACCURACY["none", s][1] for s in range(3)]
    assert table.at["b", "n_seeds"] == 3 and table.at["b", "mean"] == pytest.approx(np.mean(differences))
    assert (table.at["b", "ci_low"], table.at["b", "ci_high"]) == pytest.approx(_t_interval(differences))
    # only seeds that ran both recipes are paired
    unpaired = frame[~((frame["mitigation"] == "none") & (frame["seed"] == 2))]
    table = paired_difference(unpaired, "accuracy", ["group"], column="mitigation", minuend="lagrangian",
                              subtrahend="none").set_index("group")
    assert table.at["b", "n_seeds"] == 2 and table.at["b", "mean"] == pytest.approx(np.mean(differences[:2]))


def test_budget_labels_and_fractions_read_each_other():
    assert budget_label(0.1) == "10%" and budget_label(0.005) == "0.5%"
    assert budget_fraction("0.5%", 1000) == 0.005 and budget_fraction(0.2, 1000) == 0.2
