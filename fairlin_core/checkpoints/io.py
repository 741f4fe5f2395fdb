"""Safe checkpoints: safetensors weights plus a JSON sidecar; nothing is ever unpickled.

A checkpoint ``NAME.safetensors`` has its sidecar ``NAME.json`` beside it. The sidecar holds the
model spec (enough to rebuild the architecture), the dataset and its options, the seed, the ReLU
count, per-group accuracy and package versions. Loading refuses corrupt files, pickles and
``torch.save`` archives, weights whose names or shapes disagree with the sidecar's architecture, and values
no model may hold (:func:`check_weights`: NaN, infinite or complex weights, masks outside [0, 1]).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import struct
import tempfile
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes, save_file
from torch import nn

from ..version import __version__
from .dataset import check_fits, load_dataset_for
from ..data import DatasetBundle
from ..errors import CheckpointError, FairLinError, brief, one_line, shown
from ..inputs import open_regular, parse_json, read_json
from ..models import MAX_STATE_VALUES, ModelSpec, build_model, mask_names, relu_count, state_shapes
from ..outputs import prepare_output_file
from ..runtime import pid_alive

SIDECAR_FORMAT = "fairlin-checkpoint"
SIDECAR_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024
MAX_SIDECAR_BYTES = 32 * 1024 * 1024
MAX_WEIGHTS_BYTES = 8 + _MAX_HEADER + 8 * MAX_STATE_VALUES  # the largest model's header and float64 values
_WRITTEN_BY_SAVE = ("format", "format_version", "model", "created", "versions")  # save_checkpoint sets these


@dataclass
class Checkpoint:
    """A model with its spec and sidecar: loaded from disk (``path`` set) or made in memory (``path`` None,
    e.g. by :func:`fairlin_core.linearizers`). ``model`` is in eval mode on CPU."""

    model: nn.Module
    spec: ModelSpec
    sidecar: dict[str, Any]
    path: Path | None = None

    @property
    def label(self) -> str:
        """The file path, or the sidecar's kind (base / linearized) for a model in memory."""
        return str(self.path) if self.path is not None else f"{self.sidecar.get('kind', 'model')} (in memory)"

    @property
    def relu_count(self) -> int:
        """ReLUs switched on in the model now (mask entries above the SNL threshold)."""
        return relu_count(self.model)

    def dataset(self, data_root: str | Path | None = None, group: str | None = None):
        """The dataset this checkpoint was trained on, with the same options, seed and splits, checked to fit
        the model (:func:`~fairlin_core.checkpoints.load_dataset_for`); ``group`` protects another attribute."""
        return load_dataset_for(self.sidecar, data_root, group=group, label=self.label)

    def resolve_data(self, data: DatasetBundle | None = None) -> DatasetBundle:
        """``data`` checked against the model's input shape and classes (:func:`check_fits`), or the checkpoint's
        own dataset (checked alike)."""
        return check_fits(self.spec, data, self.label) if data is not None else self.dataset()

    def save(self, path: str | Path) -> Path:
        """Write ``NAME.safetensors`` + ``NAME.json`` (as a pair, see :func:`save_checkpoint`); returns the weights path, also kept in ``path``."""
        metadata = {k: v for k, v in self.sidecar.items() if k not in _WRITTEN_BY_SAVE}
        self.path = save_checkpoint(path, self.model, self.spec, metadata)
        return self.path


def sidecar_path(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def package_versions() -> dict[str, str]:
    import numpy
    import safetensors
    return {"fairlin": __version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "safetensors": safetensors.__version__, "python": platform.python_version()}


_STAGED_NAME = 40  # characters of the target's name kept in its temporaries' names (they must fit NAME_MAX too)


def checkpoint_target(path: str | Path) -> Path:
    """The weights file of a checkpoint written to ``path``: ``path`` with its suffix made ``.safetensors``
    (its sidecar is the ``.json`` beside it). CheckpointError when ``path`` names no file (``.``, ``/``)."""
    path = Path(path)
    if not path.name or path.name == "..":
        raise CheckpointError(f"checkpoint output {brief(str(path))} names no file; expected a file path "
                              f"NAME.safetensors")
    return path if path.suffix == ".safetensors" else path.with_suffix(".safetensors")


def prepare_checkpoint_output(path: str | Path, *, overwrite: bool = False, what: str = "checkpoint") -> Path:
    """Check where a checkpoint pair goes before any work starts (:func:`~fairlin_core.outputs.prepare_output_file`
    for the weights and their sidecar: the folder writable, names UTF-8 and short enough, no checkpoint there
    unless ``overwrite``); returns the absolute weights path :func:`save_checkpoint` then writes."""
    return prepare_output_file(checkpoint_target(path), [".json"], overwrite=overwrite, what=what)


def _stage_pattern(path: Path) -> re.Pattern[str]:
    """Names of :func:`_staged`'s temporaries for ``path``: ``.NAME.PID.XXXXXXXX.tmp`` (NAME cut to 40 characters,
    PID the writer's process id)."""
    return re.compile(rf"\.{re.escape(path.name[:_STAGED_NAME])}\.([0-9]+)\.[a-z0-9_]+\.tmp")


def _sweep_stale(path: Path) -> None:
    """Remove the temporaries of ``path`` whose writer no longer runs (a writer killed mid-write, e.g. kill -9,
    leaves its temporary behind); a live writer's (this process's included) are kept. Best effort: one that
    cannot be removed (another user's) stays."""
    pattern = _stage_pattern(path)
    for entry in path.parent.iterdir():
        found = pattern.fullmatch(entry.name)
        if found and int(found.group(1)) != os.getpid() and not pid_alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                entry.unlink(missing_ok=True)


def _staged(path: Path, write) -> str:
    """Write via ``write(tmp)`` into a temporary file beside ``path`` (named by :func:`_stage_pattern`, after
    removing those of dead writers); returns the temporary file's name. A failed write removes its temporary."""
    path.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:_STAGED_NAME]}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)  # the writer may have removed it already (safetensors does on failure)
        raise
    return tmp


def _write_failure(path: Path, error: Exception) -> CheckpointError:
    """The one-line error of a checkpoint that could not be staged (disk full, file too large, ...)."""
    reason = error.strerror if isinstance(error, OSError) and error.strerror else one_line(str(error), 200)
    kept = ("the checkpoint already there is kept unchanged" if path.exists() or sidecar_path(path).exists()
            else "nothing was written")
    return CheckpointError(f"cannot write checkpoint {brief(str(path))} ({reason}); {kept}; expected a writable folder "
                           f"with room for it")


def save_checkpoint(path: str | Path, model: nn.Module, spec: ModelSpec, metadata: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors, see :func:`checkpoint_target`) and its JSON sidecar as a pair; returns the
    weights path.

    metadata: dataset, seed, metrics, ... (merged into the sidecar next to the model spec).
    Both files are staged completely first; then the old sidecar goes, the weights are renamed into place
    and the sidecar last, so an interruption leaves the old pair, the new pair, or weights without a sidecar
    (refused on load as incomplete), never new weights under an old sidecar. A staging write that fails
    (no space, file too large) is a CheckpointError; the old pair is kept then.
    """
    path = checkpoint_target(path)
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    sidecar = {"format": SIDECAR_FORMAT, "format_version": SIDECAR_VERSION, "model": spec.to_dict(),
               "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "versions": package_versions(), **metadata}
    text = json.dumps(sidecar, indent=2) + "\n"
    write_pair(path, lambda tmp: save_file(state, tmp, metadata={"format": SIDECAR_FORMAT}),
               lambda tmp: Path(tmp).write_text(text))
    return path


def write_pair(path: Path, write_weights: Callable[[str], Any], write_sidecar: Callable[[str], Any]) -> None:
    """Write the weights ``path`` and its sidecar as a pair: ``write_weights(tmp)`` and ``write_sidecar(tmp)`` each
    stage one file completely (:func:`_staged`, which first removes the temporaries of writers that died); then
    the old sidecar goes, the weights are renamed into place and the sidecar last (see :func:`save_checkpoint`).
    CheckpointError when staging fails; the old pair is kept then."""
    side = sidecar_path(path)
    staged = []
    try:
        try:
            staged.append(_staged(path, write_weights))
            staged.append(_staged(side, write_sidecar))
        except (OSError, SafetensorError) as error:
            raise _write_failure(path, error) from None
        side.unlink(missing_ok=True)
        os.replace(staged[0], path)
        os.replace(staged[1], side)
    finally:
        for tmp in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)


def resolve_checkpoint_path(path: str | Path) -> Path:
    """The weights file for ``path``: a .safetensors file, its .json sidecar, or a folder holding one.
    CheckpointError when there is none, or the path cannot even be looked up (a name longer than the system takes)."""
    path = Path(path)
    try:
        folder = path.is_dir()
    except OSError as error:  # Python 3.11's is_dir/exists raise for ENAMETOOLONG and other lookup failures
        raise CheckpointError(f"checkpoint {shown(path)} cannot be looked up ({error.strerror or error}); expected "
                              f"the path of a .safetensors file, its .json sidecar or a folder holding one") from None
    if folder:
        found = sorted(path.glob("*.safetensors"))
        if len(found) != 1:
            raise CheckpointError(f"folder {shown(path)} holds {len(found)} .safetensors files; expected exactly one "
                                  f"(or pass the file itself)")
        return found[0]
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    if not path.exists():
        raise CheckpointError(f"checkpoint {shown(path)} not found; expected a .safetensors file with a .json sidecar "
                              f"beside it")
    return path


def read_sidecar(weights_path: Path) -> dict[str, Any]:
    """The JSON sidecar of ``weights_path``, read through the input guard (a regular file of at most
    :data:`MAX_SIDECAR_BYTES`, JSON within the nesting and size bounds) and checked to be FairLin's."""
    side = sidecar_path(weights_path)
    if not side.exists():
        raise CheckpointError(f"sidecar {side} not found; every checkpoint needs NAME.json beside NAME.safetensors")
    sidecar = read_json(side, MAX_SIDECAR_BYTES, "sidecar", "the JSON written with the checkpoint", CheckpointError)
    if not isinstance(sidecar, dict) or sidecar.get("format") != SIDECAR_FORMAT or "model" not in sidecar:
        raise CheckpointError(f"sidecar {side} is not a FairLin checkpoint sidecar; expected a JSON object with "
                              f"\"format\": \"{SIDECAR_FORMAT}\" and a \"model\" spec")
    return sidecar


def _not_safetensors(path: Path, head: bytes, size: int) -> CheckpointError:
    """The error of a weights file whose first bytes are no safetensors header: a pickle or torch.save archive
    named as such, anything else as corrupt."""
    if head[:2] == b"PK" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05")):
        kind = "a torch.save zip archive" if head[:2] == b"PK" else "a Python pickle"
        return CheckpointError(f"{path} is {kind}, not safetensors; FairLin never unpickles checkpoints. "
                               f"Expected a safetensors file (convert with safetensors.torch.save_file)")
    return CheckpointError(f"{path} is corrupt or not a safetensors file ({size} bytes, bad header); expected a "
                           f"complete safetensors file written by FairLin")


def _corrupt(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"{path} is corrupt ({reason}); expected a complete safetensors file")


def _read_header(handle: BinaryIO, path: Path) -> tuple[int, dict[str, tuple[int, ...]], int]:
    """From the start of the open weights file: (header length in bytes, tensor name -> shape, bytes of tensor
    data the header declares). Pickles, archives and bad headers are refused before the header is read whole."""
    size = os.fstat(handle.fileno()).st_size
    head = handle.read(9)
    header_len = struct.unpack("<Q", head[:8])[0] if len(head) == 9 else 0
    if not (head[8:9] == b"{" and 2 <= header_len <= min(_MAX_HEADER, size - 8)):
        raise _not_safetensors(path, head, size)
    header = parse_json(head[8:] + handle.read(header_len - 1), f"the header of {path}", "a safetensors header",
                        CheckpointError)
    if not isinstance(header, dict):
        raise _corrupt(path, "its header is no JSON object")
    shapes, end = {}, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        shape = entry.get("shape") if isinstance(entry, dict) else None
        offsets = entry.get("data_offsets") if isinstance(entry, dict) else None
        if not (isinstance(shape, list) and all(isinstance(n, int) and n >= 0 for n in shape)
                and isinstance(offsets, list) and len(offsets) == 2 and all(isinstance(n, int) for n in offsets)):
            raise _corrupt(path, f"header entry {brief(name)} has no shape and data offsets")
        shapes[name] = tuple(shape)
        end = max(end, offsets[1])
    return header_len, shapes, end


def _read_tensors(handle: BinaryIO, path: Path, header_len: int, data_len: int) -> dict[str, torch.Tensor]:
    """The tensors of the open weights file, read once its size is the one its header declares (a truncated or
    longer file is refused unread), and never more than that size plus one byte (a file that grew meanwhile)."""
    total = 8 + header_len + data_len
    size = os.fstat(handle.fileno()).st_size
    if size != total:
        raise _corrupt(path, f"{size:,} bytes where its header declares {total:,}")
    handle.seek(0)
    data = handle.read(total + 1)
    if len(data) != total:
        raise _corrupt(path, f"it changed while read ({len(data):,} bytes where its header declares {total:,})")
    try:
        return load_bytes(data)
    except (SafetensorError, ValueError) as error:
        raise _corrupt(path, one_line(str(error), 200)) from error


def shape_mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    """What differs between two name -> shape maps ("" when they agree)."""
    if expected == found:
        return ""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(n for n in set(expected) & set(found) if expected[n] != found[n])
    details = []
    if missing:
        details.append(f"missing {len(missing)} tensor(s) e.g. {brief(missing[:3])}")
    if unexpected:
        details.append(f"unexpected {len(unexpected)} tensor(s) e.g. {brief(unexpected[:3])}")
    if wrong:
        details.append("wrong shape: " + ", ".join(f"{brief(n)} {brief(found[n])} != {expected[n]}" for n in wrong[:3]))
    return "; ".join(details)


def check_weights(state: Mapping[str, torch.Tensor], source: str, masks: Collection[str] = ()) -> None:
    """Refuse values no model may hold, wherever weights enter (a checkpoint loaded, a file imported): complex
    tensors, NaN or infinite entries of any floating tensor, and masks (the keys in ``masks``, see
    :func:`~fairlin_core.models.mask_names`) outside [0, 1]. Integer and boolean tensors (batch norm's
    ``num_batches_tracked``) pass. CheckpointError naming ``source`` and the first bad tensor."""
    for name, tensor in state.items():
        mask = name in masks
        problem = _value_problem(tensor, mask)
        if problem:
            raise CheckpointError(f"{source}: {'mask' if mask else 'tensor'} {brief(name)} {problem}")


def _value_problem(tensor: torch.Tensor, mask: bool) -> str:
    """What is wrong with one tensor's values (or its storage: sparse), "" when nothing (a meta tensor has no values
    to check)."""
    expected = "masks must lie in [0, 1] (1: a ReLU, 0: the identity)" if mask else "weights must be finite"
    if tensor.is_meta:
        return ""
    if tensor.layout != torch.strided:  # sparse storage: no model here holds it, and the checks below reject it
        return f"is stored as {str(tensor.layout).removeprefix('torch.')}; weights must be dense tensors"
    if tensor.is_complex():
        return f"is complex ({str(tensor.dtype).removeprefix('torch.')}); weights must be real numbers"
    if tensor.is_floating_point():
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            nan = int(torch.isnan(tensor).sum())
            infinite = tensor.numel() - int(finite.sum()) - nan
            parts = [f"{n} {kind} value{'s' if n != 1 else ''}" for n, kind in ((nan, "NaN"), (infinite, "infinite")) if n]
            return f"has {' and '.join(parts)}; {expected}"
    if mask and tensor.numel():
        low, high = float(tensor.min()), float(tensor.max())
        if low < 0 or high > 1:
            return f"has values from {low:g} to {high:g}; {expected}"
    return ""


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a checkpoint; the model is returned in eval mode on CPU.

    Nothing is allocated before the sidecar's architecture is known to be within bounds and the weights
    file's header (tensor names and shapes) matches it: the architecture is first built on the meta device.
    Both files pass the input guard (:mod:`fairlin_core.inputs`: regular files of bounded size); the weights
    are read through one open file, never more than their header declares. The weights' values are checked
    (:func:`check_weights`) before the model takes them.
    """
    weights_path = resolve_checkpoint_path(path)
    sidecar = read_sidecar(weights_path)
    with open_regular(weights_path, MAX_WEIGHTS_BYTES, "checkpoint weights", CheckpointError) as handle:
        header_len, found, data_len = _read_header(handle, weights_path)
        try:
            spec = ModelSpec.from_dict(sidecar["model"])
            expected = state_shapes(spec)
        except FairLinError as error:
            raise CheckpointError(f"sidecar of {weights_path} describes no buildable model: {error}") from error
        details = shape_mismatch(expected, found)
        if details:
            raise CheckpointError(f"{weights_path} does not match the architecture in its sidecar "
                                  f"({spec.name}, options {spec.options}): {details}")
        state = _read_tensors(handle, weights_path, header_len, data_len)
    model = build_model(spec)
    check_weights(state, str(weights_path), mask_names(model))
    model.load_state_dict(state)
    model.eval()
    return Checkpoint(model=model, spec=spec, sidecar=sidecar, path=weights_path)
