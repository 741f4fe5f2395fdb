"""Where the run store and the user checkpoints live on disk."""

from __future__ import annotations

import os
from pathlib import Path

STORE_ENV = "FAIRLIN_STORE"
DEFAULT_STORE = "fairlin_runs"
USER_CHECKPOINTS = "user_checkpoints"


def resolve_store_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root`` if given, else ``$FAIRLIN_STORE`` if set and non-empty, else ``./fairlin_runs`` (absolute)."""
    chosen = root if root is not None else os.environ.get(STORE_ENV) or DEFAULT_STORE
    return Path(chosen).expanduser().absolute()


def user_checkpoint_dir(root: str | os.PathLike[str] | None = None) -> Path:
    """Where uploaded and trained base checkpoints go: <run store>/user_checkpoints."""
    return resolve_store_root(root) / USER_CHECKPOINTS
