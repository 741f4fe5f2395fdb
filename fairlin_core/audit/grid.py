"""A full fairness audit of one base checkpoint: every method x budget x seed, mitigated and not.

This is what the dashboard opens on. :func:`build_audit` works through (method, seed) chunks: the
linearizer places the masks once for all budgets (SNL: one shared trajectory), then each student is
finetuned twice on the same masks, plainly and with the fairness-constrained finetune, evaluated on
every reporting split, and (on the diagnostic seeds) audited with the paper's diagnostics. Each chunk
is written to ``out/chunks/`` as soon as it is done, so an interrupted build resumes where it stopped;
at the end the chunks are merged into the :mod:`fairlin_core.results` folder layout.

    python -m fairlin_core default-audit            # regenerates results/default_audit (shipped)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .core import parse_diagnostics, run_audit
from ..checkpoints import load_checkpoint, load_dataset_for
from ..errors import FairLinError
from ..finetune import DEFAULT_MU, FinetuneConfig, MitigationConfig, mitigation_factory, mitigation_names
from ..finetune.fair import NONE
from ..linearize import (METHODS, LinearizeOptions, SNLConfig, finish, get_linearizer, prepare_students,
                         resolve_budget)
from ..linearize.output import save_linearized
from ..models import relu_count
from .results import AuditResults, audit_rows, budget_fraction, run_groups
from ..runtime import CancelFlag, Progress, ProgressFn, check_cancel, pid_alive

DEFAULT_BUDGETS = ("20%", "10%", "5%", "2%", "1%", "0.5%")
MITIGATIONS = ("off", "on")
OWNER = "owner.pid"


@dataclass(frozen=True)
class AuditGrid:
    """What to run. ``mitigation``: the method of the mitigated ("on") runs (lagrangian, reweight, groupdro;
    ``mu`` is lagrangian's step size). ``diagnostics`` are computed on the runs of ``diagnostic_seeds``
    (both mitigations); ``detail`` (the costlier density and attribution maps) only on their unmitigated runs."""

    checkpoint: str
    methods: tuple[str, ...] = METHODS
    budgets: tuple[str, ...] = DEFAULT_BUDGETS
    seeds: tuple[int, ...] = (0, 1, 2)
    mu: float = DEFAULT_MU
    mitigation: str = "lagrangian"
    snl_epochs: int = 100
    finetune_epochs: int = 20
    diagnostics: tuple[str, ...] = ("grad", "hessian", "boundary", "bound")
    detail: tuple[str, ...] = ("density", "attr")
    diagnostic_seeds: tuple[int, ...] = (0,)
    data_root: str | None = field(default=None, compare=False)

    def validate(self) -> AuditGrid:
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise FairLinError(f"unknown method(s) {unknown or '(none)'}; expected some of {', '.join(METHODS)}")
        if not self.budgets or not self.seeds:
            raise FairLinError("an audit needs at least one budget and one seed")
        if self.mitigation == NONE:
            raise FairLinError("the audit grid's mitigated runs need a method; expected one of "
                               f"{', '.join(mitigation_names()[1:])}, not none")
        self.mitigation_config().validate()
        parse_diagnostics([*self.diagnostics, *self.detail] or ["accuracy"])
        return self

    def mitigation_config(self) -> MitigationConfig:
        return MitigationConfig(method=self.mitigation, mu=self.mu)

    def manifest(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("data_root")
        data["checkpoint"] = Path(self.checkpoint).name
        return data


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


def _run_config(grid: AuditGrid, method: str, budget: str, seed: int, mitigated: bool,
                diagnostics: list[str]) -> dict[str, Any]:
    """A run's full configuration, as downloadable JSON (same option names as a job config)."""
    return {"checkpoint": Path(grid.checkpoint).name, "method": method, "budget": budget, "seed": seed,
            "snl": asdict(SNLConfig(epochs=grid.snl_epochs)),
            "finetune": asdict(FinetuneConfig(epochs=grid.finetune_epochs)),
            "mitigation": asdict(grid.mitigation_config()) if mitigated else None,
            "diagnostics": diagnostics, "shared_masks": "plain and mitigated finetunes start from the same masks"}


def run_chunk(grid: AuditGrid, method: str, seed: int, *, progress: ProgressFn | None = None,
              cancel: CancelFlag | None = None) -> dict[str, Any]:
    """One method and seed: every budget, both mitigations. Returns the chunk's tables and configs."""
    checkpoint = load_checkpoint(grid.checkpoint)
    bundle = load_dataset_for(checkpoint.sidecar, grid.data_root)
    options = LinearizeOptions(snl=SNLConfig(epochs=grid.snl_epochs),
                               finetune=FinetuneConfig(epochs=grid.finetune_epochs))
    budgets, _ = method_budgets(grid, method, checkpoint.spec, relu_count(checkpoint.model))
    _report(progress, 0.0, f"{method} seed {seed}: placing masks for {len(budgets)} budgets")
    prepared = prepare_students(checkpoint.model, checkpoint.spec, bundle, method, budgets, options=options, seed=seed,
                                cancel=cancel)
    factory = mitigation_factory(bundle, grid.mitigation_config())
    tables: dict[str, list[pd.DataFrame]] = {}
    configs: dict[str, Any] = {}
    steps = len(prepared.students) * len(MITIGATIONS)
    for i, student in enumerate(prepared.students):
        for j, mitigation in enumerate(MITIGATIONS):
            check_cancel(cancel)
            mitigated = mitigation == "on"
            run_id = f"{method}-{student.budget_requested}-seed{seed}-mit-{mitigation}"
            _report(progress, (i * len(MITIGATIONS) + j) / steps, f"{run_id}: finetuning")
            result = finish(prepared, student, bundle, cancel=cancel, objective_factory=factory if mitigated else None)
            diagnostics = []
            if seed in grid.diagnostic_seeds:
                diagnostics = list(grid.diagnostics) + ([] if mitigated else list(grid.detail))
            audit: dict[str, Any] = {}
            if diagnostics:
                _report(progress, (i * len(MITIGATIONS) + j + 0.5) / steps, f"{run_id}: diagnostics")
                with tempfile.TemporaryDirectory() as folder:
                    weights = save_linearized(result, folder, bundle, base_checkpoint=checkpoint.path)
                    audit = run_audit(checkpoint.path, weights, diagnostics=diagnostics, seed=seed,
                                      data_root=grid.data_root, cancel=cancel)
            run = {"run_id": run_id, "method": method, "budget": str(student.budget_requested),
                   "budget_fraction": budget_fraction(student.budget_requested, result.base_relu_count),
                   "relu_count": result.relu_count, "base_relu_count": result.base_relu_count, "seed": seed,
                   "mitigation": mitigation, "mu": grid.mu if mitigated else float("nan"),
                   "configuration": json.dumps(result.configuration, sort_keys=True),
                   "param_distance": audit.get("param_distance", float("nan"))}
            pieces = {"runs": pd.DataFrame([run]), "groups": run_groups(run_id, result.evaluations),
                      **audit_rows(run_id, audit)}
            for name, table in pieces.items():
                tables.setdefault(name, []).append(table)
            configs[run_id] = _run_config(grid, method, str(student.budget_requested), seed, mitigated, diagnostics)
    return {"tables": {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}, "configs": configs}


def _report(progress: ProgressFn | None, fraction: float, message: str) -> None:
    if progress is not None:
        progress(Progress(fraction, "audit", message))


def _chunk_dir(out: Path, method: str, seed: int) -> Path:
    return out / "chunks" / f"{method}-seed{seed}"


def build_audit(grid: AuditGrid, out: str | Path, *, progress: ProgressFn | None = None,
                cancel: CancelFlag | None = None) -> AuditResults:
    """Run (or resume) the whole grid into ``out`` and return the merged results (also saved there)."""
    grid = grid.validate()
    out = Path(out)
    manifest_path = out / "chunks" / "grid.json"
    manifest = grid.manifest()
    if manifest_path.exists() and json.loads(manifest_path.read_text()) != json.loads(json.dumps(manifest)):
        raise FairLinError(f"{out} holds chunks of a different audit grid ({manifest_path}); expected the same "
                           f"grid to resume, or an empty folder")
    manifest_path.parent.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    chunks = [(m, s) for m in grid.methods for s in grid.seeds]
    while True:
        pending = [(m, s) for m, s in chunks if not (_chunk_dir(out, m, s) / "configs.json").exists()]
        claimed = next(((m, s) for m, s in pending if _claim(_chunk_dir(out, m, s))), None)
        if claimed is None:
            if not pending:
                break
            time.sleep(2.0)  # another process is building the remaining chunks
            continue
        method, seed = claimed
        folder = _chunk_dir(out, method, seed)
        staging = _staging(folder)
        k = chunks.index(claimed)
        chunk = run_chunk(grid, method, seed, cancel=cancel, progress=_within(progress, k, len(chunks)))
        for name, table in chunk["tables"].items():
            table.to_csv(staging / f"{name}.csv", index=False)
        (staging / "configs.json").write_text(json.dumps(chunk["configs"], indent=1) + "\n")
        (staging / OWNER).unlink()
        staging.rename(folder)
    results = merge_chunks(grid, out)
    results.save(out)
    return results


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


def merge_chunks(grid: AuditGrid, out: Path) -> AuditResults:
    """The chunks under ``out/chunks`` as one :class:`AuditResults` (dataset facts from the checkpoint)."""
    checkpoint = load_checkpoint(grid.checkpoint)
    bundle = load_dataset_for(checkpoint.sidecar, grid.data_root)
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
            "input_shape": list(checkpoint.spec.input_shape), "grid": grid.manifest(),
            "skipped": skipped,
            "regenerate": "python -m fairlin_core default-audit"}
    return AuditResults.from_tables({name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()},
                                    group_sizes=bundle.group_sizes()[["split", "group", "n"]], configs=configs,
                                    meta=meta)


DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[2] / "checkpoints" / "digits_resnet18.safetensors"
