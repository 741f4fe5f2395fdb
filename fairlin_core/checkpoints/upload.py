"""Validated checkpoint uploads: a safetensors file and its JSON sidecar are checked in a staging folder
(loaded exactly as :func:`load_checkpoint` loads, never unpickled) and only then stored."""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from ..errors import FairLinError
from ..models import relu_count
from ..outputs import prepare_output_file
from .io import load_checkpoint

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_SIDECAR_BYTES = 1024 * 1024
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


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
    stem = name[: -len(".safetensors")]
    if not SAFE_NAME.fullmatch(stem):
        raise FairLinError(f"checkpoint name {stem!r} is not allowed; expected letters, digits, '_', '-' or '.' "
                           f"(at most 100 characters)")
    if len(weights) > max_bytes:
        raise FairLinError(f"{name} is {len(weights) / 2**20:.1f} MiB; the upload limit is {max_bytes / 2**20:.0f} MiB")
    if not weights:
        raise FairLinError(f"{name} is empty; expected a complete safetensors file")
    if len(sidecar) > MAX_SIDECAR_BYTES:
        raise FairLinError(f"the sidecar is {len(sidecar) / 2**20:.1f} MiB; expected a small JSON file (at most "
                           f"{MAX_SIDECAR_BYTES / 2**20:.0f} MiB)")
    target = prepare_output_file(Path(dest_dir) / name, [".json"], what="user checkpoints",
                                 hint=f"rename the file to upload it as well (a user checkpoint named {stem} exists)")
    dest_dir = target.parent
    with tempfile.TemporaryDirectory(prefix="fairlin-upload-") as temp:
        staged = Path(temp) / name
        staged.write_bytes(weights)
        staged.with_suffix(".json").write_bytes(sidecar)
        try:
            checkpoint = load_checkpoint(staged)
        except FairLinError as error:
            raise FairLinError("upload refused: " + str(error).replace(str(staged.parent) + os.sep, "")) from None
        if not isinstance(checkpoint.sidecar.get("relu_count"), int):
            data = json.loads(sidecar)
            data["relu_count"] = relu_count(checkpoint.model)
            staged.with_suffix(".json").write_text(json.dumps(data, indent=1))
        dest_dir.mkdir(parents=True, exist_ok=True)
        partial = dest_dir / f".{stem}.{uuid.uuid4().hex}.partial"
        shutil.copyfile(staged.with_suffix(".json"), partial.with_suffix(".json"))
        shutil.copyfile(staged, partial)
        os.replace(partial.with_suffix(".json"), target.with_suffix(".json"))
        os.replace(partial, target)
    return target
