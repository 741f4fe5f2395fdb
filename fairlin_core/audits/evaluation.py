"""Per-group accuracy of any FairLin checkpoint on a split of the data it was trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..checkpoints import load_checkpoint
from ..metrics import evaluate_model
from ..models import relu_count


def evaluate_checkpoint(path: str | Path, *, data_root: str | Path | None = None,
                        split: str = "test") -> dict[str, Any]:
    """Per-group accuracy of any FairLin checkpoint on a split of the data it was trained on."""
    checkpoint = load_checkpoint(path)
    bundle = checkpoint.dataset(data_root)
    result = evaluate_model(checkpoint.model, bundle, split)
    return {"checkpoint": str(checkpoint.path), "dataset": bundle.name, "relu_count": relu_count(checkpoint.model),
            **result}
