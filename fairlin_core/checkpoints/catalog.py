"""What is on disk: shipped and user checkpoints, read from their sidecars as tidy tables.

Reading the catalogue touches only the JSON sidecars (no weights are loaded), so it is cheap enough
for a dashboard to call on every rerun.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import CheckpointError
from ..inputs import read_json
from .io import MAX_SIDECAR_BYTES, read_sidecar

SHIPPED_CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
MANIFEST_NAME = "MANIFEST.json"

CHECKPOINT_COLUMNS = ["checkpoint", "path", "kind", "model", "width", "dataset", "relu_count", "seed", "split",
                      "overall_accuracy", "worst_group_accuracy"]
GROUP_COLUMNS = ["checkpoint", "dataset", "split", "group", "n", "accuracy"]


def _sidecars(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """(weights path, sidecar) of every checkpoint in ``folder`` whose sidecar :func:`read_sidecar` accepts (the
    others are skipped: the catalogue lists what loads)."""
    found = []
    for side in sorted(folder.glob("*.json")):
        weights = side.with_suffix(".safetensors")
        if side.name == MANIFEST_NAME or not weights.exists():
            continue
        try:
            found.append((weights, read_sidecar(weights)))
        except CheckpointError:
            continue
    return found


def checkpoint_table(folder: str | Path = SHIPPED_CHECKPOINTS) -> pd.DataFrame:
    """One row per checkpoint in ``folder``: model, dataset, ReLU count and its recorded test accuracy."""
    rows = []
    for path, side in _sidecars(Path(folder)):
        evaluation = side.get("evaluation", {})
        rows.append({"checkpoint": path.stem, "path": str(path), "kind": side.get("kind", ""),
                     "model": side["model"].get("name", ""), "width": side["model"].get("options", {}).get("width"),
                     "dataset": side.get("dataset", {}).get("name", ""), "relu_count": side.get("relu_count"),
                     "seed": side.get("seed"), "split": evaluation.get("split", ""),
                     "overall_accuracy": evaluation.get("overall_accuracy"),
                     "worst_group_accuracy": evaluation.get("worst_group_accuracy")})
    return pd.DataFrame(rows, columns=CHECKPOINT_COLUMNS)


def checkpoint_group_table(folder: str | Path = SHIPPED_CHECKPOINTS) -> pd.DataFrame:
    """Tidy per-group accuracy recorded in the sidecars: one row per checkpoint x split x group."""
    rows = []
    for path, side in _sidecars(Path(folder)):
        evaluations = side.get("evaluations") or {"test": side.get("evaluation", {})}
        for split, evaluation in evaluations.items():
            for group in evaluation.get("groups", []):
                rows.append({"checkpoint": path.stem, "dataset": side.get("dataset", {}).get("name", ""),
                             "split": split, "group": group["group"], "n": group["n"], "accuracy": group["accuracy"]})
    return pd.DataFrame(rows, columns=GROUP_COLUMNS)


def manifest(folder: str | Path = SHIPPED_CHECKPOINTS) -> list[dict[str, Any]]:
    """The shipped checkpoints' manifest: file, description and the command that regenerates each."""
    path = Path(folder) / MANIFEST_NAME
    if not path.exists():
        return []
    return read_json(path, MAX_SIDECAR_BYTES, "checkpoint manifest", 'a JSON object with "checkpoints"',
                     CheckpointError)["checkpoints"]
