"""The audit's views on the shipped default audit, pinned: each view returns the DataFrame (columns, order, dtype
kinds, values to float tolerance) or dict recorded in ``snapshots/`` (written by the code before the views were
rebuilt on :mod:`fairlin_core.audits.frame`; regenerate deliberately with ``python tests/audit/test_audit_frame.py``).

Two results are pinned: the shipped audit as it is, and a thinned copy (some seeds of some cells dropped) so that
unpaired seeds, single-seed cells and missing mitigations are covered too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fairlin_core.audits.results import SHIPPED_AUDIT, AuditResults, load_results

SNAPSHOTS = Path(__file__).parent / "snapshots"
TEXT_COLUMNS = ("group", "budget", "method", "mitigation", "group_class", "split", "run_id", "profile")


def thinned(results: AuditResults) -> AuditResults:
    """``results`` without: snl's lagrangian seed 2, random's plain seed 0, and every deepreduce 1% run but seed 1."""
    runs = results.runs
    drop = (((runs["method"] == "snl") & (runs["mitigation"] == "lagrangian") & (runs["seed"] == 2))
            | ((runs["method"] == "random") & (runs["mitigation"] == "none") & (runs["seed"] == 0))
            | ((runs["method"] == "deepreduce") & (runs["budget"] == "1%") & (runs["seed"] != 1)))
    keep = set(runs.loc[~drop, "run_id"])
    tables = {name: getattr(results, name) for name in ("runs", "groups", "diagnostics")}
    tables = {name: table[table["run_id"].isin(keep)].reset_index(drop=True) for name, table in tables.items()}
    return AuditResults.from_tables(tables, group_sizes=results.group_sizes,
                                    configs={r: c for r, c in results.configs.items() if r in keep},
                                    meta=results.meta)


def views(results: AuditResults) -> dict[str, pd.DataFrame | dict]:
    """name -> the view's value, for a handful of argument combinations."""
    out: dict[str, pd.DataFrame | dict] = {}
    for split in ("test", "balanced"):
        out[f"fairness_summary-{split}"] = results.fairness_summary(split)
        out[f"base_accuracy-{split}"] = results.base_accuracy(split)
        out[f"headline-{split}"] = results.headline(split)
        out[f"cost_front-{split}"] = results.cost_front(split)
        for mitigation in ("none", "lagrangian"):
            out[f"class_drop-{split}-{mitigation}"] = results.class_drop(split, mitigation)
            out[f"method_comparison-{split}-{mitigation}"] = results.method_comparison(split, mitigation)
    for split, method, mitigation in (("test", "snl", "none"), ("balanced", "random", "lagrangian"),
                                      ("test", "deepreduce", "lagrangian")):
        out[f"group_drop-{split}-{method}-{mitigation}"] = results.group_drop(split, method, mitigation)
    for split, method in (("test", "snl"), ("balanced", "deepreduce"), ("balanced", "random")):
        out[f"mitigation_effect-{split}-{method}"] = results.mitigation_effect(split, method, "lagrangian")
    for method, mitigation in (("snl", "none"), ("snl", "lagrangian"), ("random", "none")):
        out[f"diagnostics_by_budget-{method}-{mitigation}"] = results.diagnostics_by_budget(method, mitigation)
        for budget in ("0.5%", "5%"):
            out[f"bound_agreement-{method}-{mitigation}-{budget}"] = results.bound_agreement(method, budget,
                                                                                             mitigation)
    out["parameter_distances"] = results.parameter_distances()
    out["group_classes"] = results.group_classes()
    out["run_costs-delphi"] = results.run_costs("delphi")
    out["cost_front-test-delphi-client-garbler"] = results.cost_front("test", "delphi-client-garbler")
    return out


def _plain(value):
    """JSON-comparable: numpy scalars as Python numbers, NaN as None."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (float, np.floating)):
        return None if np.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _assert_close(actual, expected) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and sorted(actual) == sorted(expected)
        for key in expected:
            _assert_close(actual[key], expected[key])
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-9)
    else:
        assert actual == expected


def write(folder: Path = SNAPSHOTS) -> None:
    folder.mkdir(exist_ok=True)
    kinds = {}
    for variant, results in _variants().items():
        for name, value in views(results).items():
            stem = f"{variant}-{name}"
            if isinstance(value, dict):
                (folder / f"{stem}.json").write_text(json.dumps(_plain(value), indent=1, sort_keys=True) + "\n")
            else:
                value.to_csv(folder / f"{stem}.csv", index_label="_index", float_format="%.17g")
                kinds[stem] = {str(c): value[c].dtype.kind for c in value.columns}
    (folder / "dtype_kinds.json").write_text(json.dumps(kinds, indent=1, sort_keys=True) + "\n")


def _variants() -> dict[str, AuditResults]:
    shipped = load_results(SHIPPED_AUDIT)
    return {"shipped": shipped, "thinned": thinned(shipped)}


@pytest.fixture(scope="module")
def computed():
    return {f"{variant}-{name}": value for variant, results in _variants().items()
            for name, value in views(results).items()}


def _names() -> list[str]:
    return sorted(p.stem for p in SNAPSHOTS.glob("*-*.*"))


def test_every_snapshot_is_a_view(computed):
    assert sorted(computed) == _names()


@pytest.mark.parametrize("name", _names())
def test_view_matches_its_snapshot(computed, name):
    value = computed[name]
    if isinstance(value, dict):
        _assert_close(_plain(value), json.loads((SNAPSHOTS / f"{name}.json").read_text()))
        return
    kinds = json.loads((SNAPSHOTS / "dtype_kinds.json").read_text())[name]
    assert {str(c): value[c].dtype.kind for c in value.columns} == kinds
    text = {c: str for c in value.columns if c in TEXT_COLUMNS}
    expected = pd.read_csv(SNAPSHOTS / f"{name}.csv", index_col="_index", dtype=text, keep_default_na=False,
                           na_values=[""])
    expected.index.name = None
    actual = value.astype({c: str for c in text if value[c].dtype.kind == "O"})
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False, check_index_type=False, rtol=1e-9, atol=1e-12)


if __name__ == "__main__":
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else SNAPSHOTS)
