"""Checkpoints on disk: safetensors + JSON sidecar io, the dataset a checkpoint names, the catalogue, foreign
formats (importers) and validated uploads."""

from .catalog import SHIPPED_CHECKPOINTS, checkpoint_group_table, checkpoint_table
from .dataset import dataset_reference, load_dataset_for
from .importers import FORMATS, IMPORT_SUFFIXES, import_checkpoint
from .io import (MAX_SIDECAR_BYTES, MAX_WEIGHTS_BYTES, SIDECAR_FORMAT, SIDECAR_VERSION, Checkpoint, load_checkpoint,
                 package_versions, read_sidecar, resolve_checkpoint_path, save_checkpoint, sidecar_path)
from .upload import MAX_UPLOAD_BYTES, accept_import, accept_upload

__all__ = ["MAX_SIDECAR_BYTES", "MAX_WEIGHTS_BYTES", "SIDECAR_FORMAT", "SIDECAR_VERSION", "Checkpoint",
           "dataset_reference", "load_checkpoint", "load_dataset_for", "package_versions", "read_sidecar",
           "resolve_checkpoint_path", "save_checkpoint", "sidecar_path", "SHIPPED_CHECKPOINTS",
           "checkpoint_group_table", "checkpoint_table", "FORMATS", "IMPORT_SUFFIXES", "import_checkpoint",
           "MAX_UPLOAD_BYTES", "accept_import", "accept_upload"]
