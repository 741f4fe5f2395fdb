"""Checkpoints on disk: safetensors + JSON sidecar io, the dataset a checkpoint names, the catalogue."""

from .dataset import dataset_reference, load_dataset_for
from .io import (MAX_SIDECAR_BYTES, MAX_WEIGHTS_BYTES, SIDECAR_FORMAT, SIDECAR_VERSION, Checkpoint, load_checkpoint,
                 package_versions, read_sidecar, resolve_checkpoint_path, save_checkpoint, sidecar_path)

__all__ = ["MAX_SIDECAR_BYTES", "MAX_WEIGHTS_BYTES", "SIDECAR_FORMAT", "SIDECAR_VERSION", "Checkpoint",
           "dataset_reference", "load_checkpoint", "load_dataset_for", "package_versions", "read_sidecar",
           "resolve_checkpoint_path", "save_checkpoint", "sidecar_path"]
