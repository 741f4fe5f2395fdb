"""CLI commands of the job system: ``sweep`` (queue and run a grid of runs) and ``runs`` (read the store).

``--json`` shapes:

- ``sweep --json``: ``{"store", "counts": {status: n}, "runs": [run rows + "error"], "notes": [duplicate inputs
  merged]}``
- ``runs --json``: ``[{"id", "status", "config", "created", "finished", "relu_count", "overall_accuracy",
  "worst_group_accuracy"}]``
- ``runs show ID --json``: that row plus started, error, traceback, path, summary and
  ``tables`` ({"groups": rows, "history": rows, "audit:<name>": rows}).
- ``runs --rebuild-index --json``: ``{"store", "done", "damaged": [{"id", "problem"}], "unindexed": [{"id",
  "problem", "moved_to"}], "old_index"}``.

``runs`` only reads (the store may be read-only); ``sweep`` and ``runs --verify`` write.
"""

from __future__ import annotations

import argparse
import itertools
from collections import Counter
from dataclasses import replace
from typing import Any


from ..errors import FairLinError, brief
from ..checkpoints import read_sidecar, resolve_checkpoint_path
from ..finetune import MitigationConfig, mitigation_names
from ..finetune.fair import NONE
from ..linearizers import LinearizeRecipe, unique_budgets
from ..linearizers.recipe import describe_mitigation
from ..runtime import PRECISIONS, Progress, comma_list, json_records, merge_duplicates
from ..limits import NON_NEGATIVE, POSITIVE, check_count
from .common import add_json_arg, budget_list, count_arg, float_arg, print_json, print_notes, seed_list
from .progress import TqdmProgress
from ..jobs.config import JobConfig
from ..jobs.manager import EXECUTORS, JobManager
from ..jobs.ray_executor import ADDRESS_ENV, DEFAULT_RETRIES
from ..jobs.store import ACTIVE, LIST_COLUMNS, STATUSES, RunStore

MITIGATION_ALIASES = {"on": ["lagrangian"], "both": ["none", "lagrangian"]}  # the choices before method names


def sweep_mitigations(text: str) -> list[str]:
    """Mitigation method names of ``--mitigation``: comma-separated names (none, lagrangian, reweight,
    groupdro), where ``on`` means lagrangian and ``both`` none + lagrangian; duplicates dropped, order kept."""
    names: list[str] = []
    for item in _items(text, "--mitigation"):
        for name in MITIGATION_ALIASES.get(item, [item]):
            if name not in mitigation_names():
                raise FairLinError(f"unknown mitigation {brief(item)}; expected comma-separated names from "
                                   f"{', '.join(mitigation_names())}, or on (= lagrangian) or both (= none,lagrangian)")
            if name not in names:
                names.append(name)
    return names


def _items(text: str, flag: str) -> list[str]:
    items = comma_list(text)
    if not items:
        raise FairLinError(f"{flag} is empty; expected a comma-separated list")
    return items


def _seeds(text: str) -> list[int]:
    _items(text, "--seeds")
    return seed_list(text, "--seeds")


def sweep_configs(args: argparse.Namespace) -> tuple[list[JobConfig], list[str]]:
    """One recipe per method x budget x seed x mitigation, in that nesting order, on the checkpoint, validated; and
    notes on the duplicate methods, seeds and budgets (equal ReLU counts, e.g. 16 and 0.5 of 32) that were merged.
    A mitigation's options (--mu, --tolerance, --normalize, --lambda-max; --eta) go to the methods that read them."""
    given = {"lagrangian": {"mu": args.mu, "tolerance": args.tolerance, "normalize": args.normalize or None,
                            "lambda_max": args.lambda_max}, "groupdro": {"eta": args.eta}}
    mitigations = [MitigationConfig.coerce({"method": name, **{k: v for k, v in given.get(name, {}).items()
                                                               if v is not None}}) if name != NONE else None
                   for name in sweep_mitigations(args.mitigation)]
    snl = {"epochs": args.snl_epochs} if args.snl_epochs is not None else {}
    tune = {k: v for k, v in {"epochs": args.finetune_epochs, "select": args.select}.items() if v is not None}
    diagnostics = _items(args.diagnostics, "--diagnostics") if args.diagnostics else []
    template = LinearizeRecipe.from_dict({"snl": snl, "finetune": tune, "diagnostics": diagnostics,
                                          "precision": args.precision})
    methods, notes = merge_duplicates(_items(args.methods, "--methods"), "method")
    seeds, more = merge_duplicates(_seeds(args.seeds), "seed")
    _items(args.budgets, "--budgets")
    budgets = budget_list(args.budgets, "--budgets")
    base_count = read_sidecar(resolve_checkpoint_path(args.checkpoint)).get("relu_count")
    if isinstance(base_count, int) and not isinstance(base_count, bool) and base_count > 0:
        budgets, budget_notes = unique_budgets(budgets, base_count)
    else:
        budgets, budget_notes = merge_duplicates(budgets, "budget")
    check_count(len(methods) * len(budgets) * len(seeds) * len(mitigations),
                "the number of runs of one sweep (methods x budgets x seeds x mitigations)", "runs")
    grid = itertools.product(methods, budgets, seeds, mitigations)
    configs = [JobConfig(args.checkpoint, replace(template, method=method, budget=budget, seed=seed,
                                                  mitigation=mitigation), data_root=args.data_root).validate()
               for method, budget, seed, mitigation in grid]
    return configs, notes + budget_notes + more


def _record(store: RunStore, run_id: str) -> dict[str, Any]:
    row = store.row(run_id)
    return {**{name: row[name] for name in LIST_COLUMNS}, "error": row["error"]}


def _follow(manager: JobManager, ids: list[str]) -> None:
    """Draw one tqdm bar over the sweep until every run is finished (taking over the runs of a peer process
    that died or shut down before finishing them)."""
    bar = TqdmProgress(f"sweep of {len(ids)} runs")
    try:
        while True:
            manager.take_over(ids)  # a peer sharing the sweep died: its runs are ours now
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
    configs, notes = sweep_configs(args)
    print_notes(notes)
    store = RunStore(args.store)
    manager = JobManager(store, workers=args.workers, executor=args.executor, ray_address=args.ray_address,
                         ray_retries=args.ray_retries)
    try:
        ids = list(dict.fromkeys(manager.submit(config) for config in configs))
        _follow(manager, ids)
    finally:
        manager.shutdown()
    records = [_record(store, run_id) for run_id in ids]
    counts = dict(Counter(r["status"] for r in records))
    if args.json:
        print_json({"store": str(store.root), "counts": counts, "runs": records, "notes": notes})
    else:
        for r in records:
            c = r["config"]
            print(f"{r['id']}  {r['status']:11s} {c['method']:10s} budget={c['budget']!s:6s} seed={c['seed']} "
                  f"mitigation={describe_mitigation(MitigationConfig.coerce(c['mitigation']))} "
                  f"relus={r['relu_count']} acc={r['overall_accuracy']} worst={r['worst_group_accuracy']}")
    failed = [r for r in records if r["status"] != "done"]
    if failed:
        first = failed[0]
        raise FairLinError(f"{len(failed)} of {len(records)} runs did not finish (first: {first['id']} "
                           f"{first['status']}: {first['error']}); see `runs show ID` in store {store.root}")


def cmd_runs(args: argparse.Namespace) -> None:
    """List the store's runs, or show one with its tables (read-only, unless --verify marks damaged runs);
    --rebuild-index rebuilds a damaged index from the run folders."""
    if args.rebuild_index:
        if args.action or args.verify or args.status:
            raise FairLinError("--rebuild-index rebuilds the whole index; expected no `show`, --status or --verify "
                               "with it")
        report = RunStore.rebuild_index(args.store)
        if args.json:
            print_json(report)
            return
        print(f"rebuilt the index of {report['store']}: {report['done']} done run(s) indexed, "
              f"{len(report['damaged'])} damaged, {len(report['unindexed'])} unreadable (moved aside); "
              f"old index kept as {report['old_index']}")
        for entry in report["damaged"] + report["unindexed"]:
            print(f"  {entry['id']}: {entry['problem']}")
        return
    store = RunStore(args.store, read_only=not args.verify)
    if args.action == "show":
        if not args.run_id:
            raise FairLinError("runs show needs a run id; expected `runs show ID` (ids from `runs`)")
        run = store.get_run(args.run_id)
        if args.json:
            print_json({**run.record(), "started": run.started, "error": run.error, "traceback": run.traceback,
                         "path": str(run.path), "summary": run.summary,
                         "tables": {name: json_records(table) for name, table in run.tables.items()}})
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
        print_json(store.list_runs(args.status))
        return
    table = store.runs_table(args.status)
    print(table.to_string(index=False) if len(table) else f"no runs in store {store.root}")


def add_executor_args(parser: argparse.ArgumentParser) -> None:
    """--executor local|ray, --ray-address, --ray-retries (shared by sweep and default-audit)."""
    parser.add_argument("--executor", choices=EXECUTORS, default="local",
                        help="local: threads of this process (default); ray: Ray tasks on a local Ray instance or "
                             "the cluster at --ray-address (needs pip install \"fairlin[ray]\")")
    parser.add_argument("--ray-address", help=f"Ray cluster: auto or HOST:PORT (default: ${ADDRESS_ENV}, else a "
                                              f"local Ray instance sized to this machine)")
    parser.add_argument("--ray-retries", type=count_arg("retries", minimum=0), default=DEFAULT_RETRIES,
                        help=f"runs again a task whose Ray worker died, at most this often (default "
                             f"{DEFAULT_RETRIES}); a run that fails by itself is never retried")


def _add_store_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", help="run store folder (default: $FAIRLIN_STORE, else ./fairlin_runs)")


def configure_sweep(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="base checkpoint (.safetensors, its .json, or a folder)")
    defaults, mitigation = LinearizeRecipe(), MitigationConfig()  # the help's defaults are the recipe's
    p.add_argument("--methods", default=defaults.method,
                   help="comma-separated, from snl, deepreduce, random (default %(default)s)")
    p.add_argument("--budgets", required=True,
                   help="comma-separated ReLU budgets: counts (500), fractions (0.1) or percentages (10%%)")
    p.add_argument("--seeds", default=str(defaults.seed), help="comma-separated seeds (default %(default)s)")
    p.add_argument("--mitigation", default=defaults.mitigation_name, metavar="NAMES",
                   help=f"comma-separated finetune objectives, one run each: {', '.join(mitigation_names())}; "
                        f"on = lagrangian, both = none,lagrangian (default %(default)s)")
    p.add_argument("--mu", type=float_arg(POSITIVE), help=f"lagrangian multiplier step (default {mitigation.mu:g})")
    p.add_argument("--tolerance", type=float_arg(NON_NEGATIVE),
                   help=f"lagrangian: violations up to this are free (default {mitigation.tolerance:g})")
    p.add_argument("--normalize", action="store_true", help="lagrangian: violations relative to the population loss")
    p.add_argument("--lambda-max", type=float_arg(POSITIVE), help="lagrangian: cap of the multipliers (default: none)")
    p.add_argument("--eta", type=float_arg(POSITIVE), help=f"groupdro step size (default {mitigation.eta:g})")
    p.add_argument("--select", help=f"validation model selection: auto (constrained when mitigated, else overall), "
                                    f"overall, worst-group, constrained (default {defaults.finetune.select})")
    p.add_argument("--diagnostics", help="audit diagnostics per run, comma-separated (accuracy, grad, hessian, "
                                         "boundary, bound, attr, density; default none)")
    p.add_argument("--snl-epochs", type=count_arg("epochs"),
                   help=f"maximum SNL epochs (default {defaults.snl.epochs})")
    p.add_argument("--finetune-epochs", type=count_arg("epochs", minimum=0),
                   help=f"finetune epochs after linearizing (default {defaults.finetune.epochs})")
    p.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                   help="training precision: fp32 (reproducible) or bf16 autocast on CUDA (a CPU run is fp32); "
                        "default %(default)s")
    p.add_argument("--workers", type=count_arg("workers"),
                   help="runs at a time (default: local: one per CUDA GPU, else 1; ray: the cluster's GPUs, "
                        "else its CPUs)")
    add_executor_args(p)
    p.add_argument("--data-root", help="folder holding the datasets (default: $FAIRLIN_DATA_ROOT, else ./data)")
    _add_store_arg(p)
    add_json_arg(p, "print a JSON summary of every run of the sweep")
    p.set_defaults(func=cmd_sweep)


def configure_runs(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["show"], help="show: one run with its tables")
    p.add_argument("run_id", nargs="?", help="run id (or a unique prefix of 4+ characters)")
    _add_store_arg(p)
    p.add_argument("--status", help=f"only these statuses, comma-separated ({', '.join(STATUSES)})")
    p.add_argument("--verify", action="store_true",
                   help="check every done run against its manifest first (damaged ones are marked)")
    p.add_argument("--rebuild-index", action="store_true",
                   help="rebuild a damaged runs.sqlite from the run folders' manifests and summaries (each "
                        "verified; nothing is recomputed)")
    add_json_arg(p)
    p.set_defaults(func=cmd_runs)
