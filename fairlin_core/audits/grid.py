"""A full fairness audit of one base checkpoint: every method x budget x seed, mitigated and not.

This is what the dashboard opens on. :func:`build_audit` works through (method, seed) chunks: the
linearizer places the masks once for all budgets (SNL: one shared trajectory), then each student is
finetuned twice on the same masks, plainly and with the fairness-constrained finetune, evaluated on
every reporting split, and (on the diagnostic seeds) audited with the paper's diagnostics. Each chunk
is written to ``out/chunks/`` as soon as it is done, so an interrupted build resumes where it stopped;
at the end the chunks are merged into the :mod:`fairlin_core.results` folder layout.

    python -m fairlin_core default-audit            # into ./fairlin_audit
    python -m fairlin_core default-audit --out results/default_audit --overwrite   # regenerates the shipped one

The output is guarded: the shipped ``results/default_audit`` is written only with ``overwrite``; a folder
holding another grid, another checkpoint or files that are no audit is refused (naming what differs)
unless ``overwrite``; the same grid resumes. The grid is checked whole (every budget resolved against the
checkpoint, duplicates merged with a note) before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from .core import parse_diagnostics, run_audit
from ..checkpoints import Checkpoint, load_checkpoint, load_dataset_for, resolve_checkpoint_path
from ..data import DatasetBundle
from ..errors import FairLinError, brief, check_seed, clip
from ..inputs import read_json
from ..finetune import MitigationConfig, mitigation_factory, mitigation_names
from ..limits import check_many
from ..linearizers import (METHODS, LinearizeRecipe, finish, get_linearizer, prepare_students, resolve_budget,
                         unique_budgets)
from ..linearizers.output import save_linearized
from ..models import relu_count
from ..outputs import check_writable
from .frame import budget_fraction
from .results import SHIPPED_AUDIT, AuditResults, audit_rows, run_groups
from .results_io import MAX_JSON_BYTES
from ..runtime import CancelFlag, Progress, ProgressFn, check_cancel, file_digest, merge_duplicates, pid_alive

DEFAULT_BUDGETS = ("20%", "10%", "5%", "2%", "1%", "0.5%")
_TEMPLATE_KEYS = ("snl", "finetune", "mitigation", "precision")  # what a grid's manifest keeps of its template
SHARED_MASKS = "plain and mitigated finetunes start from the same masks"
DEFAULT_TEMPLATE = LinearizeRecipe(mitigation=MitigationConfig())  # every option at its default; lagrangian when on
OWNER = "owner.pid"
DEFAULT_AUDIT_OUT = "fairlin_audit"  # default-audit's folder when no --out is given (relative to the working folder)
REPO_AUDIT = Path(__file__).resolve().parents[2] / "results" / "default_audit"  # shipped; read-only to the tool


@dataclass(frozen=True)
class AuditGrid:
    """What to run: every method x budget x seed, each unmitigated and mitigated, from one template recipe.

    recipe: the template of every run's recipe (:meth:`recipes`): its SNL schedule, finetune and precision, and
    its mitigation (method by name + options) for the mitigated runs; its method, budget, seed and diagnostics are
    set per run. ``diagnostics`` are computed on the runs of ``diagnostic_seeds`` (both mitigations); ``detail``
    (the costlier density and attribution maps) only on their unmitigated runs."""

    checkpoint: str
    methods: tuple[str, ...] = METHODS
    budgets: tuple[str, ...] = DEFAULT_BUDGETS
    seeds: tuple[int, ...] = (0, 1, 2)
    recipe: LinearizeRecipe = DEFAULT_TEMPLATE
    diagnostics: tuple[str, ...] = ("grad", "hessian", "boundary", "bound")
    detail: tuple[str, ...] = ("density", "attr")
    diagnostic_seeds: tuple[int, ...] = (0,)
    data_root: str | None = field(default=None, compare=False)

    def validate(self) -> AuditGrid:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise FairLinError(f"unknown method(s) {clip(', '.join(map(repr, unknown))) or '(none)'}; expected some of "
                               f"{', '.join(METHODS)}")
        if not self.budgets or not self.seeds:
            raise FairLinError("an audit needs at least one budget and one seed")
        check_many(self.budgets, "budgets", "budgets")
        for seeds in (self.seeds, self.diagnostic_seeds):
            for seed in check_many(seeds, "seeds", "seeds"):
                check_seed(seed)
        if not isinstance(self.recipe, LinearizeRecipe):
            raise FairLinError(f"the audit grid's recipe must be a LinearizeRecipe, got {brief(self.recipe)}")
        recipe = self.recipe.validate()
        if recipe.mitigation is None:
            raise FairLinError("the audit grid's mitigated runs need a method; expected one of "
                               f"{', '.join(mitigation_names()[1:])}, not none")
        parse_diagnostics([*self.diagnostics, *self.detail] or ["accuracy"])
        return replace(self, recipe=recipe)

    def recipes(self) -> Iterator[LinearizeRecipe]:
        """One recipe per method x budget x seed x (no mitigation, the grid's mitigation), in that nesting order,
        with the diagnostics its run computes."""
        for method in self.methods:
            for budget in self.budgets:
                for seed in self.seeds:
                    for mitigation in (None, self.recipe.mitigation):
                        diagnostics = ()
                        if seed in self.diagnostic_seeds:
                            diagnostics = (*self.diagnostics, *(self.detail if mitigation is None else ()))
                        yield replace(self.recipe, method=method, budget=budget, seed=seed, mitigation=mitigation,
                                      diagnostics=diagnostics)

    def manifest(self) -> dict[str, Any]:
        """What identifies the grid in its results (``meta["grid"]``) and in ``chunks/grid.json``: the checkpoint's
        file name, the axes, the template's options (snl, finetune, mitigation, precision) and the diagnostics."""
        template = self.recipe.to_dict()
        return {"checkpoint": Path(self.checkpoint).name, "methods": list(self.methods), "budgets": list(self.budgets),
                "seeds": list(self.seeds), **{key: template[key] for key in _TEMPLATE_KEYS},
                "diagnostics": list(self.diagnostics), "detail": list(self.detail),
                "diagnostic_seeds": list(self.diagnostic_seeds)}


def migrate_manifest(stored: dict[str, Any]) -> dict[str, Any]:
    """A grid manifest as :meth:`AuditGrid.manifest` writes it today, from one written before grids held a
    recipe (``snl_epochs``, ``finetune_epochs``, ``mu`` and, once methods existed, ``mitigation`` by name; every
    other option was its default). A current manifest is returned as it is."""
    if "snl_epochs" not in stored:
        return stored
    old, default = dict(stored), DEFAULT_TEMPLATE
    mitigation = MitigationConfig(method=old.pop("mitigation", default.mitigation.method),
                                  mu=old.pop("mu", default.mitigation.mu))
    template = replace(default, mitigation=mitigation).with_epochs(old.pop("snl_epochs"),
                                                                   old.pop("finetune_epochs", None)).to_dict()
    return {**old, **{key: template[key] for key in _TEMPLATE_KEYS}}


def normalize_grid(grid: AuditGrid) -> tuple[AuditGrid, list[str]]:
    """The grid validated whole before anything is written (methods, mu, diagnostics, the checkpoint and its
    dataset, every budget resolved against the checkpoint's ReLU count), with duplicate methods, seeds,
    diagnostic seeds and budgets that resolve to the same count merged; returns (grid, notes on merges)."""
    grid, notes, _, _ = _checked(grid)
    return grid, notes


def _checked(grid: AuditGrid) -> tuple[AuditGrid, list[str], Checkpoint, DatasetBundle]:
    """:func:`normalize_grid`'s (grid, notes) plus the checkpoint and dataset bundle it loaded to check them."""
    grid = grid.validate()
    checkpoint = load_checkpoint(grid.checkpoint)
    bundle = load_dataset_for(checkpoint.sidecar, grid.data_root)
    methods, notes = merge_duplicates(grid.methods, "method")
    budgets, more = unique_budgets(grid.budgets, relu_count(checkpoint.model))
    notes += more
    seeds, more = merge_duplicates(grid.seeds, "seed")
    notes += more
    diagnostic_seeds, more = merge_duplicates(grid.diagnostic_seeds, "diagnostic seed")
    notes += more
    return replace(grid, methods=tuple(methods), budgets=tuple(budgets), seeds=tuple(seeds),
                   diagnostic_seeds=tuple(diagnostic_seeds)), notes, checkpoint, bundle


def grid_record(grid: AuditGrid) -> dict[str, Any]:
    """What ``chunks/grid.json`` holds: the grid's manifest plus the checkpoint's sha256 (another checkpoint of
    the same file name is another audit)."""
    return {**grid.manifest(), "checkpoint_sha256": file_digest(resolve_checkpoint_path(grid.checkpoint))}


def method_budgets(grid: AuditGrid, method: str, spec: Any, base_count: int) -> tuple[list[str], list[dict[str, Any]]]:
    """The budgets a method runs, and the skipped ones with why: budgets the linearizer maps onto equal
    students (its ``student_key``, e.g. DeepReDuce's coarse configurations) are run once (for the largest
    such budget)."""
    linearizer = get_linearizer(method)
    kept, skipped, seen = [], [], {}
    for budget in grid.budgets:
        key = linearizer.student_key(spec, resolve_budget(budget, base_count))
        if key is not None and key in seen:
            skipped.append({"method": method, "budget": budget,
                            "reason": f"{key} is the one already run for budget {seen[key]}"})
        else:
            seen[key] = budget
            kept.append(budget)
    return kept, skipped


def run_chunk(grid: AuditGrid, method: str, seed: int, *, progress: ProgressFn | None = None,
              cancel: CancelFlag | None = None) -> dict[str, Any]:
    """One method and seed: every budget the method runs, each recipe of :meth:`AuditGrid.recipes` (plain and
    mitigated finetunes of the same students). Returns the chunk's tables and configs."""
    checkpoint = load_checkpoint(grid.checkpoint)
    bundle = load_dataset_for(checkpoint.sidecar, grid.data_root)
    budgets, _ = method_budgets(grid, method, checkpoint.spec, relu_count(checkpoint.model))
    _report(progress, 0.0, f"{method} seed {seed}: placing masks for {len(budgets)} budgets")
    prepared = prepare_students(checkpoint.model, checkpoint.spec, bundle, method, budgets,
                                options=grid.recipe.options(), seed=seed, cancel=cancel)
    runs = [(student, recipe) for student in prepared.students for recipe in grid.recipes()
            if (recipe.method, recipe.budget, recipe.seed) == (method, student.budget_requested, seed)]
    tables: dict[str, list[pd.DataFrame]] = {}
    configs: dict[str, Any] = {}
    for step, (student, recipe) in enumerate(runs):
        check_cancel(cancel)
        mitigated = "off" if recipe.mitigation is None else "on"  # run ids keep their form: stable across builds
        run_id = f"{method}-{student.budget_requested}-seed{seed}-mit-{mitigated}"
        _report(progress, step / len(runs), f"{run_id}: finetuning")
        result = finish(prepared, student, bundle, cancel=cancel, finetune_config=recipe.finetune,
                        objective_factory=mitigation_factory(bundle, recipe.mitigation))
        audit: dict[str, Any] = {}
        if recipe.diagnostics:
            _report(progress, (step + 0.5) / len(runs), f"{run_id}: diagnostics")
            with tempfile.TemporaryDirectory() as folder:
                weights = save_linearized(result, folder, bundle, base_checkpoint=checkpoint.path)
                audit = run_audit(checkpoint.path, weights, diagnostics=list(recipe.diagnostics), seed=seed,
                                  data_root=grid.data_root, cancel=cancel)
        config = recipe.to_dict()
        run = {"run_id": run_id, "method": method, "budget": str(student.budget_requested),
               "budget_fraction": budget_fraction(student.budget_requested, result.base_relu_count),
               "relu_count": result.relu_count, "base_relu_count": result.base_relu_count, "seed": seed,
               "mitigation": recipe.mitigation_name,
               "configuration": json.dumps(result.configuration, sort_keys=True),
               "param_distance": audit.get("param_distance", float("nan"))}
        pieces = {"runs": pd.DataFrame([run]), "groups": run_groups(run_id, result.evaluations),
                  **audit_rows(run_id, audit)}
        for name, table in pieces.items():
            tables.setdefault(name, []).append(table)
        configs[run_id] = {**config, "checkpoint": Path(grid.checkpoint).name, "shared_masks": SHARED_MASKS}
    return {"tables": {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}, "configs": configs}


def _report(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(Progress(fraction, "audit", message))


def _chunk_dir(out: Path, method: str, seed: int) -> Path:
    return out / "chunks" / f"{method}-seed{seed}"


ChunkRunner = Callable[[AuditGrid, list[tuple[str, int]], ProgressFn | None, CancelFlag | None],
                       Iterator[tuple[tuple[str, int], dict[str, Any]]]]


def build_audit(grid: AuditGrid, out: str | Path, *, progress: ProgressFn | None = None,
                cancel: CancelFlag | None = None, run_chunks: ChunkRunner | None = None,
                overwrite: bool = False, on_notes: Callable[[list[str]], None] | None = None) -> AuditResults:
    """Run (or resume) the whole grid into ``out`` and return the merged results (also saved there).

    run_chunks: None = this process runs one claimed chunk after the other; else a runner (e.g. the jobs
    wing's Ray runner) handed every chunk this process could claim at once, yielding
    ``((method, seed), chunk)`` as each finishes (in any order).
    Refused before anything is written (FairLinError): an ``out`` the output guard refuses
    (:func:`~fairlin_core.outputs.check_writable`: a name too long or not UTF-8, under a regular file, not
    writable; checked before the grid is loaded), an invalid grid (:func:`normalize_grid`), the shipped results
    folder, and a folder holding another grid, checkpoint or files that are no audit, unless
    ``overwrite`` (the stale chunks are then deleted). The same grid resumes from its chunks. Duplicate
    inputs are merged; ``results.meta["notes"]`` says which, and ``on_notes`` (e.g. the CLI's printer) gets them
    once the grid is checked, before any work.
    """
    out = Path(out)
    check_writable(out, "results folder")  # its name and place first: before the grid is loaded or ``out`` read
    if not overwrite and out.resolve() in {REPO_AUDIT, SHIPPED_AUDIT.resolve()}:
        raise FairLinError(f"{out} is the shipped default audit, read-only to the tool; write elsewhere (--out DIR; "
                           f"default ./{DEFAULT_AUDIT_OUT}), or regenerate it explicitly with --out {out} --overwrite")
    grid, notes, checkpoint, bundle = _checked(grid)
    record = grid_record(grid)
    problem = _other_results(out, record)
    if problem and not overwrite:
        raise FairLinError(f"{out} holds {problem}; refusing to replace it: choose another --out (an empty or new "
                           f"folder, or one of the same grid to resume), or pass --overwrite to replace it")
    if on_notes is not None:
        on_notes(notes)
    manifest_path = out / "chunks" / "grid.json"
    if problem:
        shutil.rmtree(out / "chunks", ignore_errors=True)
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    if problem or not manifest_path.exists():  # resuming the same grid rewrites nothing
        manifest_path.write_text(json.dumps(record, indent=1) + "\n")
    chunks = [(m, s) for m in grid.methods for s in grid.seeds]
    while True:
        pending = [(m, s) for m, s in chunks if not (_chunk_dir(out, m, s) / "configs.json").exists()]
        if run_chunks is None:
            claimed = next(([c] for c in pending if _claim(_chunk_dir(out, *c))), [])
        else:
            claimed = [c for c in pending if _claim(_chunk_dir(out, *c))]
        if not claimed:
            if not pending:
                break
            time.sleep(2.0)  # another process is building the remaining chunks
            continue
        left = set(claimed)
        try:
            if run_chunks is None:
                method, seed = claimed[0]
                finished = [((method, seed), run_chunk(grid, method, seed, cancel=cancel, progress=_within(
                    progress, chunks.index(claimed[0]), len(chunks))))]
            else:
                finished = run_chunks(grid, claimed, progress, cancel)
            for (method, seed), chunk in finished:
                _commit_chunk(out, method, seed, chunk)
                left.discard((method, seed))
        finally:
            for method, seed in left:  # unfinished claims: free them for the next attempt
                shutil.rmtree(_staging(_chunk_dir(out, method, seed)), ignore_errors=True)
    results = _merge_chunks(grid, out, notes=notes, checkpoint=checkpoint, bundle=bundle, record=record)
    results.save(out)
    return results


def _commit_chunk(out: Path, method: str, seed: int, chunk: dict[str, Any]) -> None:
    """Write a chunk's tables and configs into its claimed staging folder and rename it into place."""
    folder = _chunk_dir(out, method, seed)
    staging = _staging(folder)
    for name, table in chunk["tables"].items():
        table.to_csv(staging / f"{name}.csv", index=False)
    (staging / "configs.json").write_text(json.dumps(chunk["configs"], indent=1) + "\n")
    (staging / OWNER).unlink()
    staging.rename(folder)


def _other_results(out: Path, record: dict[str, Any]) -> str:
    """What in ``out`` is not this grid's audit ("" when ``out`` is new, empty, or this grid's results): another
    grid or checkpoint (naming each field that differs), or files that are no audit."""
    if not out.is_dir() or not any(out.iterdir()):
        return ""
    stored = None
    for path, read in ((out / "chunks" / "grid.json", lambda data: data), (out / "meta.json", lambda data: data["grid"])):
        if path.is_file():
            try:
                stored = read(read_json(path, MAX_JSON_BYTES, "audit description", "the JSON of an audit"))
            except (FairLinError, KeyError, TypeError):
                return f"an unreadable audit description ({path})"
            break
    if not isinstance(stored, dict):
        names = sorted(p.name for p in out.iterdir())
        return f"files that are not an audit results folder ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})"
    stored, current = migrate_manifest(stored), json.loads(json.dumps(record))
    keys = [k for k in current if k in stored or k != "checkpoint_sha256"]  # older folders have no digest
    differ = [k for k in keys if stored.get(k) != current[k]]
    if not differ:
        return ""
    details = []
    for k in differ:
        there, asked = stored.get(k), current[k]
        if k == "checkpoint_sha256":
            details.append("checkpoint content (sha256)")
        elif isinstance(there, dict) and isinstance(asked, dict):  # a template section: name its options
            details += [f"{k} {option} {brief(there.get(option))} there, {brief(asked.get(option))} asked"
                        for option in sorted(set(there) | set(asked)) if there.get(option) != asked.get(option)]
        else:
            details.append(f"{k} {brief(there)} there, {brief(asked)} asked")
    return f"a different audit grid ({'; '.join(details)})"


def _staging(folder: Path) -> Path:
    return folder.with_name(folder.name + ".partial")


def _claim(folder: Path) -> bool:
    """Take the chunk for this process (several processes may build one grid); a chunk left half-done by
    a process that no longer runs is taken over."""
    staging = _staging(folder)
    try:
        staging.mkdir(parents=True)
    except FileExistsError:
        try:
            owner = int((staging / OWNER).read_text())
        except (OSError, ValueError):
            owner = None
        if owner is not None and pid_alive(owner):
            return False
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir(parents=True)
        except FileExistsError:
            return False
    (staging / OWNER).write_text(str(os.getpid()))
    return True


def _within(progress: ProgressFn | None, k: int, total: int) -> Callable[[Progress], None] | None:
    if progress is None:
        return None
    return lambda p: progress(Progress((k + p.fraction) / total, p.stage, f"chunk {k + 1}/{total}: {p.message}"))


def _merge_chunks(grid: AuditGrid, out: Path, *, notes: list[str], checkpoint: Checkpoint, bundle: DatasetBundle,
                  record: dict[str, Any]) -> AuditResults:
    """The chunks under ``out/chunks`` as one :class:`AuditResults`: dataset facts from the checked checkpoint
    and its bundle, ``record`` (:func:`grid_record`) and the notes on merged duplicate inputs in ``meta``."""
    tables: dict[str, list[pd.DataFrame]] = {}
    configs: dict[str, Any] = {}
    for method in grid.methods:
        for seed in grid.seeds:
            folder = _chunk_dir(out, method, seed)
            for path in sorted(folder.glob("*.csv")):
                tables.setdefault(path.stem, []).append(pd.read_csv(path, dtype={"group": str, "budget": str}))
            configs.update(json.loads((folder / "configs.json").read_text()))
    base_count = relu_count(checkpoint.model)
    skipped = []
    for method in grid.methods:
        skipped += method_budgets(grid, method, checkpoint.spec, base_count)[1]
    meta = {"checkpoint": Path(grid.checkpoint).name, "dataset": bundle.name,
            "group_attribute": bundle.group_attribute,
            "group_names": list(bundle.group_names), "base_relu_count": base_count,
            "input_shape": list(checkpoint.spec.input_shape), "model": checkpoint.spec.to_dict(),
            "grid": record, "skipped": skipped, "notes": list(notes),
            "regenerate": "python -m fairlin_core default-audit --out results/default_audit --overwrite"}
    return AuditResults.from_tables({name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()},
                                    group_sizes=bundle.group_sizes()[["split", "group", "n"]], configs=configs,
                                    meta=meta)


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "digits_resnet18.safetensors"
