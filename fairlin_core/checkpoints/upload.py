"""Validated checkpoint uploads: a safetensors file and its JSON sidecar are checked in a staging folder
(loaded exactly as :func:`load_checkpoint` loads, never unpickled) and only then stored; files in other
layouts are imported in a staging folder (:func:`accept_import`) and only then stored. Uploads never name
code to run."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import FairLinError, brief
from ..inputs import parse_json
from ..models import CODE_MODEL, relu_count
from ..outputs import prepare_output_file
from .importers import IMPORT_SUFFIXES, import_checkpoint, importable
from .io import MAX_SIDECAR_BYTES, load_checkpoint, write_pair

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def refuse_model_code(sidecar: bytes) -> None:
    """Uploads never name code to run: a sidecar whose model is built by a factory is refused."""
    try:
        data = parse_json(sidecar, "the sidecar", "the JSON written with the checkpoint")
    except FairLinError:
        return  # load_checkpoint reports the malformed sidecar
    model = data.get("model") if isinstance(data, dict) else None
    if isinstance(model, dict) and model.get("name") == CODE_MODEL:
        raise FairLinError(f"upload refused: the sidecar builds its model with code "
                           f"{brief((model.get('options') or {}).get('factory'))}; the dashboard never runs code "
                           f"from an upload (load such checkpoints from the CLI, where you choose to run your own code)")


def accept_upload(weights_name: str, weights: bytes, sidecar: bytes, dest_dir: str | Path,
                  max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Validate an uploaded safetensors checkpoint + JSON sidecar and only then store it in ``dest_dir``.

    Both files are written to a temporary folder and loaded with :func:`load_checkpoint` (safetensors
    only, never unpickled; the weights must match the architecture in the sidecar). Returns the stored
    weights path; FairLinError with a readable reason when the upload is refused.
    """
    name = Path(weights_name or "").name
    if not name.endswith(".safetensors"):
        raise FairLinError(f"{name or 'the weights file'} is not a .safetensors file; FairLin accepts only "
                           f"safetensors weights with a JSON sidecar (never pickles or torch.save files)")
    if len(sidecar) > MAX_SIDECAR_BYTES:
        raise FairLinError(f"the sidecar is {len(sidecar) / 2**20:.1f} MiB; expected a small JSON file (at most "
                           f"{MAX_SIDECAR_BYTES / 2**20:.0f} MiB)")
    target = _upload_target(name, name[: -len(".safetensors")], weights, dest_dir, max_bytes)
    refuse_model_code(sidecar)
    with tempfile.TemporaryDirectory(prefix="fairlin-upload-") as temp:
        staged = Path(temp) / name
        staged.write_bytes(weights)
        staged.with_suffix(".json").write_bytes(sidecar)
        try:
            checkpoint = load_checkpoint(staged)
        except FairLinError as error:
            raise FairLinError("upload refused: " + str(error).replace(str(staged.parent) + os.sep, "")) from None
        if not isinstance(checkpoint.sidecar.get("relu_count"), int):
            data = {**checkpoint.sidecar, "relu_count": relu_count(checkpoint.model)}
            staged.with_suffix(".json").write_text(json.dumps(data, indent=1))
        _install(staged, target)
    return target


def _upload_target(name: str, stem: str, data: bytes, dest_dir: str | Path, max_bytes: int) -> Path:
    """Where the upload ``name`` (``data``, bytes) is stored: ``dest_dir/<stem>.safetensors``. FairLinError when
    ``stem`` is no safe name, ``data`` is empty or over ``max_bytes``, or ``dest_dir`` is not writable or
    already holds a checkpoint of that name."""
    if not SAFE_NAME.fullmatch(stem):
        raise FairLinError(f"checkpoint name {brief(stem)} is not allowed; expected letters, digits, '_', '-' or '.' "
                           f"(at most 100 characters)")
    if not data:
        raise FairLinError(f"{name} is empty; expected a complete checkpoint file")
    if len(data) > max_bytes:
        raise FairLinError(f"{name} is {len(data) / 2**20:.1f} MiB; the upload limit is {max_bytes / 2**20:.0f} MiB")
    return prepare_output_file(Path(dest_dir) / f"{stem}.safetensors", [".json"], what="user checkpoints",
                               hint=f"rename the file to upload it as well (a user checkpoint named {stem} exists)")


def _install(staged: Path, target: Path) -> None:
    """Copy a validated staged checkpoint (weights + sidecar) to ``target`` as a pair (:func:`write_pair`: the
    temporaries of a copy killed midway are removed by the next writer of that name)."""
    write_pair(target, lambda tmp: shutil.copyfile(staged, tmp),
               lambda tmp: shutil.copyfile(staged.with_suffix(".json"), tmp))


def accept_import(file_name: str, data: bytes, fmt: str, arch: str, dataset: str, dest_dir: str | Path, *,
                  width: int | None = None, data_root: str | Path | None = None,
                  max_bytes: int = MAX_UPLOAD_BYTES) -> Path:
    """Import an uploaded .pth / .pth.tar / .pt / .bin / .safetensors file (:func:`import_checkpoint`, layout
    ``fmt``, zoo ``arch`` only: an upload never names code to run) in a staging folder and only then store
    the FairLin checkpoint in ``dest_dir`` as ``<stem>.safetensors``. A zoo architecture's safetensors
    with format ``state-dict`` gets its sidecar written from these choices. Returns the stored path."""
    if arch == CODE_MODEL:
        raise FairLinError("import refused: the dashboard never runs model code; choose a zoo architecture "
                           "(import --model-code checkpoints with the CLI)")
    name = Path(file_name or "").name
    if not importable(name):
        raise FairLinError(f"{name or 'the file'} cannot be imported; expected one of {', '.join(IMPORT_SUFFIXES)}")
    stem = name[: -len(next(s for s in IMPORT_SUFFIXES if name.lower().endswith(s)))]
    target = _upload_target(name, stem, data, dest_dir, max_bytes)
    with tempfile.TemporaryDirectory(prefix="fairlin-import-") as temp:
        staged = Path(temp) / name
        staged.write_bytes(data)
        options = {"width": width} if width else {}
        try:
            checkpoint = import_checkpoint(staged, fmt, arch, dataset, Path(temp) / "out" / target.name,
                                           data_root=data_root, model_options=options)
        except FairLinError as error:
            raise FairLinError("import refused: " + str(error).replace(str(staged.parent) + os.sep, "")) from None
        _install(checkpoint.path, target)
    return target
