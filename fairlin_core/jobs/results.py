"""The finished runs of a run store as audit results: :func:`collect_from_store`.

Each done run of one base checkpoint becomes one row of :class:`~fairlin_core.audits.results.AuditResults`'s
``runs``, its ``groups`` table and its diagnostics tables (the store's ``audit:<name>`` tables) the rows of
``groups``, ``diagnostics``, ``density`` and ``attributions``, and its job config (a recipe plus checkpoint,
dataset and data root) its ``configs`` entry; the runs' mitigation names come from their recipes
(:func:`~fairlin_core.audits.migration.migrate`, which also reads the sparse configs of older stores).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..audits.frame import budget_fraction, budget_label, with_relative_drop
from ..audits.results import AuditResults, audit_rows
from ..checkpoints import load_dataset_for, read_sidecar
from .store import AUDIT_PREFIX, RunStore


def collect_from_store(store: RunStore, checkpoint: str | Path, *, group: str | None = None,
                       data_root: str | Path | None = None) -> AuditResults:
    """The done runs of ``store`` linearizing ``checkpoint``, as :class:`AuditResults`. ``group``: keep only runs
    grouped by this attribute (None = the checkpoint's).

    Budgets are relabelled as percentages of the base ReLU count, so runs asked for as counts and as
    fractions line up; runs whose artifacts are damaged are left out.
    """
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
        audit = {name.removeprefix(AUDIT_PREFIX): table for name, table in run.tables.items()
                 if name.startswith(AUDIT_PREFIX)}
        distance = float("nan")
        if "summary" in audit:
            distance = float(audit["summary"]["param_distance"].iloc[0])
        runs.append({"run_id": run.id, "method": config["method"], "budget": budget_label(fraction),
                     "budget_fraction": fraction, "relu_count": summary["relu_count"], "base_relu_count": base_count,
                     "seed": config["seed"], "configuration": json.dumps(summary.get("configuration", {}), sort_keys=True),
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
