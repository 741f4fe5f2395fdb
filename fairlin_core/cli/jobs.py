"""CLI commands of the job system: ``sweep`` (queue and run a grid of runs) and ``runs`` (read the store).

``--json`` shapes:

- ``sweep --json``: ``{"store", "counts": {status: n}, "runs": [run rows + "error"]}``
- ``runs --json``: ``[{"id", "status", "config", "created", "finished", "relu_count", "overall_accuracy",
  "worst_group_accuracy"}]``
- ``runs show ID --json``: that row plus started, error, traceback, path, summary and
  ``tables`` ({"groups": rows, "history": rows, "audit:<name>": rows}).
"""

from __future__ import annotations

import argparse
import itertools
import json
from collections import Counter
from typing import Any

import pandas as pd

from ..errors import FairLinError
from ..finetune import DEFAULT_ETA, DEFAULT_MU, mitigation_names
from ..runtime import Progress, comma_list
from .progress import TqdmProgress
from ..jobs.config import JobConfig
from ..jobs.manager import JobManager
from ..jobs.store import ACTIVE, LIST_COLUMNS, STATUSES, RunStore

MITIGATION_ALIASES = {"on": ["lagrangian"], "both": ["none", "lagrangian"]}  # the choices before method names


def sweep_mitigations(text: str) -> list[str]:
    """Mitigation method names of ``--mitigation``: comma-separated names (none, lagrangian, reweight,
    groupdro), where ``on`` means lagrangian and ``both`` none + lagrangian; duplicates dropped, order kept."""
    names: list[str] = []
    for item in _items(text, "--mitigation"):
        for name in MITIGATION_ALIASES.get(item, [item]):
            if name not in mitigation_names():
                raise FairLinError(f"unknown mitigation {item!r}; expected comma-separated names from "
                                   f"{', '.join(mitigation_names())}, or on (= lagrangian) or both (= none,lagrangian)")
            if name not in names:
                names.append(name)
    return names


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, allow_nan=False))


def _items(text: str, flag: str) -> list[str]:
    items = comma_list(text)
    if not items:
        raise FairLinError(f"{flag} is empty; expected a comma-separated list")
    return items


def _seeds(text: str) -> list[int]:
    try:
        return [int(part) for part in _items(text, "--seeds")]
    except ValueError:
        raise FairLinError(f"--seeds expects comma-separated integers (e.g. 0,1,2), got {text!r}") from None


def sweep_configs(args: argparse.Namespace) -> list[JobConfig]:
    """Every combination of method x budget x seed x mitigation, in that nesting order, validated."""
    options = {"lagrangian": {"mu": args.mu, "tolerance": args.tolerance, "normalize": args.normalize,
                              "lambda_max": args.lambda_max}, "groupdro": {"eta": args.eta}}
    mitigations = [None if name == "none" else {"method": name, **options.get(name, {})}
                   for name in sweep_mitigations(args.mitigation)]
    snl = {"epochs": args.snl_epochs} if args.snl_epochs is not None else {}
    tune = {k: v for k, v in {"epochs": args.finetune_epochs, "select": args.select}.items() if v is not None}
    diagnostics = _items(args.diagnostics, "--diagnostics") if args.diagnostics else []
    grid = itertools.product(_items(args.methods, "--methods"), _items(args.budgets, "--budgets"),
                             _seeds(args.seeds), mitigations)
    return [JobConfig(checkpoint=args.checkpoint, method=method, budget=budget, seed=seed, snl=snl, finetune=tune,
                      mitigation=mitigation, diagnostics=diagnostics, data_root=args.data_root).validate()
            for method, budget, seed, mitigation in grid]


def _record(store: RunStore, run_id: str) -> dict[str, Any]:
    row = store.row(run_id)
    return {**{name: row[name] for name in LIST_COLUMNS}, "error": row["error"]}


def _follow(manager: JobManager, ids: list[str]) -> None:
    """Draw one tqdm bar over the sweep until every run is finished."""
    bar = TqdmProgress(f"sweep of {len(ids)} runs")
    try:
        while True:
            states = [manager.status(run_id) for run_id in ids]
            running = [s for s in states if s.status in ACTIVE]
            finished = len(states) - len(running)
            current = next((s for s in running if s.status == "running"), None)
            message = f"{finished}/{len(ids)} finished"
            if current is not None:
                message += f"; {current.id} {current.config['method']} {current.config['budget']}: {current.message}"
            bar(Progress((finished + sum(s.fraction for s in running)) / len(ids), "sweep", message))
            if not running:
                return
            manager.wait(ids, timeout=0.5)
    finally:
        bar.close()


def cmd_sweep(args: argparse.Namespace) -> None:
    """Queue every combination, follow them, print one line (or JSON) per run; Ctrl-C leaves them resumable."""
    configs = sweep_configs(args)
    store = RunStore(args.store)
    manager = JobManager(store, workers=args.workers)
    try:
        ids = list(dict.fromkeys(manager.submit(config) for config in configs))
        _follow(manager, ids)
    finally:
        manager.shutdown()
    records = [_record(store, run_id) for run_id in ids]
    counts = dict(Counter(r["status"] for r in records))
    if args.json:
        _print_json({"store": str(store.root), "counts": counts, "runs": records})
    else:
        for r in records:
            c = r["config"]
            print(f"{r['id']}  {r['status']:11s} {c['method']:10s} budget={c['budget']!s:6s} seed={c['seed']} "
                  f"mitigation={'off' if c['mitigation'] is None else _mitigation_label(c['mitigation'])} "
                  f"relus={r['relu_count']} acc={r['overall_accuracy']} worst={r['worst_group_accuracy']}")
    failed = [r for r in records if r["status"] != "done"]
    if failed:
        first = failed[0]
        raise FairLinError(f"{len(failed)} of {len(records)} runs did not finish (first: {first['id']} "
                           f"{first['status']}: {first['error']}); see `runs show ID` in store {store.root}")


def _mitigation_label(mitigation: dict[str, Any]) -> str:
    """``lagrangian mu=0.01``, ``reweight``, ...; a stored (sparse or pre-method) dict lacks defaults."""
    method = mitigation.get("method", "lagrangian")
    return f"lagrangian mu={mitigation.get('mu', DEFAULT_MU)}" if method == "lagrangian" else method


def _table_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts (NaN -> None)."""
    return json.loads(table.to_json(orient="records", double_precision=15))


def cmd_runs(args: argparse.Namespace) -> None:
    """List the store's runs, or show one with its tables."""
    store = RunStore(args.store)
    if args.action == "show":
        if not args.run_id:
            raise FairLinError("runs show needs a run id; expected `runs show ID` (ids from `runs`)")
        run = store.get_run(args.run_id)
        if args.json:
            _print_json({**run.record(), "started": run.started, "error": run.error, "traceback": run.traceback,
                         "path": str(run.path), "summary": run.summary,
                         "tables": {name: _table_rows(table) for name, table in run.tables.items()}})
            return
        if run.config.get("kind") == "train-base":
            print(f"{run.id} {run.status} (train-base {run.config['model']} on {run.config['dataset']['name']}, "
                  f"checkpoint {run.config['name']}, seed {run.config['seed']}): {run.error or ''}")
        else:
            print(f"{run.id} {run.status} ({run.config['method']}, budget {run.config['budget']}, seed "
                  f"{run.config['seed']}): {run.error or ''}")
        if "groups" in run.tables:
            print(run.tables["groups"].to_string(index=False))
        return
    if args.verify:
        for record in store.list_runs("done"):
            store.verify(record["id"])
    if args.json:
        _print_json(store.list_runs(args.status))
        return
    table = store.runs_table(args.status)
    print(table.to_string(index=False) if len(table) else f"no runs in store {store.root}")


def _add_store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="run store folder (default: $FAIRLIN_STORE, else ./fairlin_runs)")


def configure_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="base checkpoint (.safetensors, its .json, or a folder)")
    p.add_argument("--methods", default="snl", help="comma-separated, from snl, deepreduce, random (default snl)")
    p.add_argument("--budgets", required=True,
                   help="comma-separated ReLU budgets: counts (500), fractions (0.1) or percentages (10%%)")
    p.add_argument("--seeds", default="0", help="comma-separated seeds (default 0)")
    p.add_argument("--mitigation", default="none", metavar="NAMES",
                   help=f"comma-separated finetune objectives, one run each: {', '.join(mitigation_names())}; "
                        f"on = lagrangian, both = none,lagrangian (default none)")
    p.add_argument("--mu", type=float, default=DEFAULT_MU, help=f"lagrangian multiplier step (default {DEFAULT_MU})")
    p.add_argument("--tolerance", type=float, default=0.0, help="lagrangian: violations up to this are free (0)")
    p.add_argument("--normalize", action="store_true", help="lagrangian: violations relative to the population loss")
    p.add_argument("--lambda-max", type=float, help="lagrangian: cap of the multipliers (default: none)")
    p.add_argument("--eta", type=float, default=DEFAULT_ETA, help=f"groupdro step size (default {DEFAULT_ETA})")
    p.add_argument("--select", help="validation model selection: auto (default: constrained when mitigated, else "
                                    "overall), overall, worst-group, constrained")
    p.add_argument("--diagnostics", help="audit diagnostics per run, comma-separated (accuracy, grad, hessian, "
                                         "boundary, bound, attr, density; default none)")
    p.add_argument("--snl-epochs", type=int, help="maximum SNL epochs (default 100)")
    p.add_argument("--finetune-epochs", type=int, help="finetune epochs after linearizing (default 20)")
    p.add_argument("--workers", type=int, help="runs at a time (default: one per CUDA GPU, else 1)")
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    _add_store_arg(p)
    p.add_argument("--json", action="store_true", help="print a JSON summary of every run of the sweep")
    p.set_defaults(func=cmd_sweep)


def configure_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["show"], help="show: one run with its tables")
    p.add_argument("run_id", nargs="?", help="run id (or a unique prefix of 4+ characters)")
    _add_store_arg(p)
    p.add_argument("--status", help=f"only these statuses, comma-separated ({', '.join(STATUSES)})")
    p.add_argument("--verify", action="store_true",
                   help="check every done run against its manifest first (damaged ones are marked)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_runs)
