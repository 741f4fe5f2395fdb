"""Import the checkpoints researchers already have (.pth / .pth.tar / .pt / .bin / .safetensors) as FairLin models.

One reader serves every format: ``torch.load(path, map_location="cpu", weights_only=True, mmap=True)``
(PyTorch's weights-only unpickler: a pickle that needs any global outside its allowlist is refused
with that global's name and nothing in it runs) or safetensors; the usual containers (``state_dict``,
``model``, ``net``, ...) are unwrapped and DataParallel's ``module.`` prefixes stripped. Each layout is
a small :class:`CheckpointFormat` registered by name (like the linearizers): it says which FairLin
architecture the weights need and maps their names (and masks) onto that model's state dict.

- ``snl``: the SNL reference ``ResNet_IN`` layout (``layerN.M.alpha1.alphas`` / ``alpha2.alphas`` masks of
  shape (1, C, H, W), binarised at alpha > 1e-2 onto the sites ``relu1`` / ``relu2``; ``linear`` head).
- ``deepreduce``: the paper repository's DeepReDuce layout: CIFAR ResNet weights without masks; the
  culled stages / thinning / stem stride are given (``cull``, ``thin``, ``stem_stride``).
- ``torchvision``: ``torchvision.models.resnet18/34`` state dicts: the zoo ResNet with ``stem="imagenet"``,
  ``fc`` -> ``linear``, ``downsample`` -> ``shortcut``.
- ``state-dict``: a zoo architecture's (or a ``--model-code`` model's) own state dict, masks optional.
"""

from __future__ import annotations

import pickle
import re
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..data import DatasetBundle, DatasetOutline, load_or_outline
from ..errors import CheckpointError, FairLinError, clip, one_line
from ..inputs import check_regular
from ..registry import Registry
from ..runtime import file_digest, trust_model_code
from .dataset import dataset_reference
from .io import Checkpoint, check_weights, load_checkpoint, prepare_checkpoint_output, shape_mismatch
from ..models import (CODE_MODEL, RELU_THRESHOLD, ModelSpec, activation_sites, build_model, mask_names, relu_count,
                      resolve_spec, set_stage_masks)

PICKLE_SUFFIXES = (".pth.tar", ".pth", ".pt", ".bin")
IMPORT_SUFFIXES = (*PICKLE_SUFFIXES, ".safetensors")
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
MAX_IMPORT_BYTES = 8 * 2**30  # a file to import: the largest model's weights with optimizer state, in float64
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # torch names the refused global so: "... unsupported GLOBAL posix.system ..."
_REASON_MARK = "WeightsUnpickler error:"  # torch puts the unpickler's own reason after this (when it is not a global)


def importable(name: str) -> bool:
    """Whether a file name has a suffix the importer reads."""
    return name.lower().endswith(IMPORT_SUFFIXES)


def _torch_load(path: Path) -> Any:
    """torch.load with the weights-only unpickler; memory-mapped when the file is a zip archive. torch's warning
    about a pickle protocol above 2 is not shown (the refusal that follows says what is wrong)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as error:
            if "mmap" not in str(error):  # legacy (non-zip) torch.save files cannot be memory-mapped
                raise
        return torch.load(path, map_location="cpu", weights_only=True)


def _refused_pickle(name: str, error: pickle.UnpicklingError) -> CheckpointError:
    """The one-line refusal of a pickle the weights-only unpickler stopped: the global it needed (parsed from
    torch's message, e.g. ``posix.system``) or, failing that, the unpickler's own reason; and how to convert it."""
    text = str(error)
    found = _GLOBAL.search(text)
    if found:
        what = f"needs the global {clip(found.group(1))}, which weights-only loading refuses"
    else:
        reason = text.split(_REASON_MARK)[-1].replace("Weights only load failed.", "")
        lines = [line.strip() for line in reason.splitlines() if line.strip()]
        what = f"cannot be read by the weights-only unpickler ({one_line(lines[0] if lines else 'no reason given', 200)})"
    return CheckpointError(f"{name} {what}; FairLin never runs code from a checkpoint. Expected tensors only: re-save "
                           f"it as a plain state dict with torch.save(model.state_dict(), path)")


def _check_source(path: Path) -> None:
    """A file to import exists and passes the input guard (a regular file of at most :data:`MAX_IMPORT_BYTES`)
    before anything reads or hashes it; CheckpointError otherwise."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} not found; expected a file")
    check_regular(path, MAX_IMPORT_BYTES, "checkpoint", CheckpointError)


def read_weights(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict in ``path`` and what was unwrapped to reach it.

    Returns (name -> tensor, {"container": [keys unwrapped], "stripped_prefix": "module." or "",
    "extra": {other top-level entries that are plain strings or numbers, e.g. arch, epoch}}).
    CheckpointError when the suffix is unknown, the file is no regular file of at most :data:`MAX_IMPORT_BYTES`
    (:func:`~fairlin_core.inputs.check_regular`) or unreadable, a pickle needs a global outside PyTorch's
    weights-only allowlist, no tensors are found, or a tensor holds NaN, infinite or complex values
    (:func:`~fairlin_core.checkpoints.io.check_weights`).
    """
    path = Path(path)
    name = path.name
    if not importable(name):
        raise CheckpointError(f"{name} is not an importable checkpoint; expected one of {', '.join(IMPORT_SUFFIXES)}")
    _check_source(path)
    if name.lower().endswith(".safetensors"):
        try:
            data: Any = load_file(path)
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{name} is not a readable safetensors file ({error})") from None
    else:
        try:
            data = _torch_load(path)
        except pickle.UnpicklingError as error:
            raise _refused_pickle(name, error) from None
        except (RuntimeError, OSError, EOFError, ValueError) as error:
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise CheckpointError(f"{name} is not a readable torch.save file ({first})") from None
    container: list[str] = []
    extra: dict[str, Any] = {}
    while isinstance(data, dict) and not _is_state(data):
        key = next((k for k in CONTAINER_KEYS if isinstance(data.get(k), dict)), None)
        if key is None:
            raise CheckpointError(f"{name} holds no state dict: top-level keys {sorted(map(str, data))[:8]}; expected "
                                  f"tensors by name or a container under one of {', '.join(CONTAINER_KEYS)}")
        extra.update({k: v for k, v in data.items() if isinstance(v, (str, int, float, bool)) and k != key})
        container.append(key)
        data = data[key]
    if not isinstance(data, dict) or not data:
        raise CheckpointError(f"{name} holds {type(data).__name__}, not a state dict; expected tensors by name")
    state = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    check_weights(state, name)
    prefix = "module." if state and all(k.startswith("module.") for k in state) else ""
    state = {k[len(prefix):]: v for k, v in state.items()}
    return state, {"container": container, "stripped_prefix": prefix, "extra": extra}


def _is_state(data: dict) -> bool:
    return bool(data) and all(isinstance(v, torch.Tensor) for v in data.values())


class CheckpointFormat(ABC):
    """A checkpoint layout: the FairLin spec its weights need, and the mapping of its names onto it."""

    name: ClassVar[str]
    description: ClassVar[str]
    architectures: ClassVar[tuple[str, ...]]
    options: ClassVar[tuple[str, ...]] = ()  # format options it takes (e.g. deepreduce's cull)

    def spec(self, arch: str, num_classes: int, input_shape: tuple[int, ...], state: dict[str, torch.Tensor],
             model_options: dict[str, Any]) -> ModelSpec:
        """The architecture the weights load into; by default the zoo ``arch`` with ``model_options``
        (the stage-1 width read from ``conv1.weight`` when not given)."""
        if arch not in self.architectures:
            raise CheckpointError(f"format {self.name} imports {', '.join(self.architectures)}, got --arch {arch}")
        options = dict(model_options)
        if "width" not in options and "conv1.weight" in state and arch.startswith("resnet"):
            options["width"] = int(state["conv1.weight"].shape[0])
        return resolve_spec(arch, num_classes, input_shape, **options)

    @abstractmethod
    def map_state(self, state: dict[str, torch.Tensor], model: nn.Module,
                  options: dict[str, Any]) -> tuple[dict[str, torch.Tensor], list[list[str]]]:
        """(FairLin state dict for ``model`` (may omit masks: they stay 1), renaming rules [[from, to], ...]).

        ``model`` may live on the meta device: read its names and shapes, never its values."""

    def finish(self, model: nn.Module, options: dict[str, Any]) -> None:
        """Adjust the loaded model in place (e.g. set masks the file does not hold); nothing by default."""


FORMATS: Registry[CheckpointFormat] = Registry("checkpoint format", error=CheckpointError)


def register_format(fmt: CheckpointFormat) -> CheckpointFormat:
    """Make ``fmt`` importable by its name; CheckpointError if the name is taken."""
    return FORMATS.register(fmt.name, fmt)


def get_format(name: str) -> CheckpointFormat:
    return FORMATS.lookup(name)


def _rename(state: dict[str, torch.Tensor], rules: list[list[str]]) -> dict[str, torch.Tensor]:
    """Apply ``[[from, to], ...]`` to every dotted name component sequence (first matching rule wins)."""
    renamed = {}
    for key, value in state.items():
        dotted = "." + key
        for old, new in rules:
            dotted = dotted.replace("." + old, "." + new)
        renamed[dotted[1:]] = value
    return renamed


class SNLFormat(CheckpointFormat):
    name = "snl"
    description = ("SNL reference ResNet_IN (selective_network_linearization; the paper's repository): masks "
                   "layerN.M.alpha1/alpha2.alphas (1,C,H,W), binarised at alpha > 1e-2; head linear")
    architectures = ("resnet18", "resnet34")
    RULES = [["alpha1.alphas", "relu1.alpha"], ["alpha2.alphas", "relu2.alpha"]]

    def map_state(self, state, model, options):
        mapped = _rename(state, self.RULES)
        for key in [k for k in mapped if k.endswith(".alpha")]:
            mask = mapped[key]
            mapped[key] = (mask.reshape(mask.shape[1:]) > RELU_THRESHOLD).float() if mask.dim() == 4 else mask
        return mapped, self.RULES


class DeepReduceFormat(CheckpointFormat):
    name = "deepreduce"
    description = ("the paper repository's DeepReDuce {'model', 'model_arch'} .pth: CIFAR ResNet weights, culled "
                   "stages carry no ReLU; give cull (stages), thin and stem_stride")
    architectures = ("resnet18", "resnet34")
    options = ("cull", "thin", "stem_stride")

    def map_state(self, state, model, options):
        return dict(state), []

    def finish(self, model, options):
        try:
            set_stage_masks(model, tuple(int(s) for s in options.get("cull", ())), bool(options.get("thin", False)))
        except ValueError as error:
            raise CheckpointError(str(error)) from None


class TorchvisionFormat(CheckpointFormat):
    name = "torchvision"
    description = ("torchvision.models.resnet18/34 state dict: ImageNet stem (7x7 conv, stem ReLU, max-pool), "
                   "downsample, head fc")
    architectures = ("resnet18", "resnet34")
    RULES = [["fc.", "linear."], ["downsample.", "shortcut."]]

    def spec(self, arch, num_classes, input_shape, state, model_options):
        return super().spec(arch, num_classes, input_shape, state, {**model_options, "stem": "imagenet"})

    def map_state(self, state, model, options):
        return _rename(state, self.RULES), self.RULES


class StateDictFormat(CheckpointFormat):
    name = "state-dict"
    description = "a zoo architecture's (or a --model-code model's) own state dict; masks optional"
    architectures = ("resnet18", "resnet34", "vgg19_bn", "wrn22_8", "mlp", CODE_MODEL)

    def map_state(self, state, model, options):
        return dict(state), []


for _format in (SNLFormat(), DeepReduceFormat(), TorchvisionFormat(), StateDictFormat()):
    register_format(_format)


@dataclass
class ImportedWeights:
    """A model built from an imported file: in eval mode on CPU, with its spec and the ``imported_from`` record."""

    model: nn.Module
    spec: ModelSpec
    record: dict[str, Any]

    @property
    def linearized(self) -> bool:
        """Whether any mask entry is off (the file is a linearized model, not a base model)."""
        return any(bool((site.alpha == 0).any()) for _, site in activation_sites(self.model))


def import_weights(path: str | Path, fmt: str, arch: str, input_shape: tuple[int, ...], num_classes: int, *,
                   model_options: dict[str, Any] | None = None,
                   format_options: dict[str, Any] | None = None) -> ImportedWeights:
    """Read ``path`` in layout ``fmt`` into FairLin's ``arch`` for inputs ``input_shape`` (C, H, W) and
    ``num_classes``; every name and shape must match (CheckpointError listing the differences otherwise), and
    the masks the file holds must lie in [0, 1].

    model_options: zoo options (e.g. width) or, for ``arch="code"``, ``factory`` and ``kwargs``.
    format_options: the format's own options (deepreduce: cull, thin, stem_stride).
    """
    path = Path(path)
    layout = get_format(fmt)
    format_options = dict(format_options or {})
    unknown = sorted(set(format_options) - set(layout.options))
    if unknown:
        raise CheckpointError(f"format {fmt} takes no option(s) {', '.join(unknown)}"
                              + (f"; it takes {', '.join(layout.options)}" if layout.options else ""))
    state, unwrapped = read_weights(path)
    options = dict(model_options or {})
    if "stem_stride" in format_options:
        options["stem_stride"] = int(format_options["stem_stride"])
    try:
        spec = layout.spec(arch, num_classes, tuple(input_shape), state, options)
        # zoo models are built without memory and take the (memory-mapped) tensors as they are; model code
        # needs real tensors for its probe forward
        with torch.device("meta" if spec.name != CODE_MODEL else "cpu"):
            model = build_model(spec)
    except CheckpointError:
        raise
    except FairLinError as error:
        raise CheckpointError(f"cannot build {arch} for {path.name}: {error}") from None
    mapped, rules = layout.map_state(state, model, format_options)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in mapped.items()}
    # masks the file does not hold are optional (they default to on, or the format sets them)
    mismatch = shape_mismatch({k: v for k, v in expected.items() if not k.endswith(".alpha") or k in found}, found)
    if mismatch:
        raise CheckpointError(f"{path.name} is not a {fmt} checkpoint of {spec.name} (options {spec.options}, input "
                              f"{tuple(input_shape)}, {num_classes} classes): " + mismatch)
    masks = mask_names(model)
    check_weights({k: v for k, v in mapped.items() if k in masks}, path.name, masks)  # the rest: by read_weights
    current = model.state_dict()
    full = {k: mapped[k].to(current[k].dtype) if k in mapped else torch.ones(current[k].shape) for k in expected}
    model.load_state_dict(full, assign=True)
    layout.finish(model, format_options)
    model.eval()
    record = {"source": path.name, "sha256": file_digest(path), "format": fmt, "key_mapping": rules,
              "container": unwrapped["container"], "stripped_prefix": unwrapped["stripped_prefix"],
              "source_entries": unwrapped["extra"], "format_options": format_options,
              "masks_in_file": sum(k.endswith(".alpha") for k in found), "relu_count": relu_count(model)}
    return ImportedWeights(model, spec, record)


def import_checkpoint(source: str | Path, fmt: str, arch: str | None, dataset: str, out: str | Path, *,
                      dataset_options: dict[str, Any] | None = None, num_classes: int | None = None,
                      seed: int = 0, data_root: str | Path | None = None,
                      model_options: dict[str, Any] | None = None,
                      format_options: dict[str, Any] | None = None, model_code: str | None = None,
                      model_kwargs: dict[str, Any] | None = None, overwrite: bool = False) -> Checkpoint:
    """Import ``source`` (see :func:`import_weights`) for ``dataset`` and write a FairLin checkpoint ``out``
    (safetensors + sidecar with an ``imported_from`` record); returns it loaded.

    ``out`` is checked first, before ``source`` is read (:func:`~fairlin_core.checkpoints.io.prepare_checkpoint_output`:
    writable, a name the file system takes, and no checkpoint there unless ``overwrite``).

    The dataset (with ``dataset_options`` and ``seed``) gives the input shape, the classes (unless
    ``num_classes``) and the splits an audit reloads; its files need not be there when the registry knows its
    shape and names without them (:func:`~fairlin_core.data.load_or_outline`: cifar10, svhn): the import record's
    ``dataset_files`` then says they were absent and nothing was evaluated. The checkpoint is ``linearized`` when
    any mask in the file is off, else ``base``. ``model_code`` "package.module:function" (with ``model_kwargs``)
    builds the model with the user's own factory instead of ``arch``: the caller's choice to run that
    code, so that factory is trusted in this process from then on (:func:`~fairlin_core.runtime.trust_model_code`).
    """
    out = prepare_checkpoint_output(out, overwrite=overwrite)
    if model_code:
        trust_model_code(model_code)
        arch, model_options = CODE_MODEL, {"factory": model_code, "kwargs": dict(model_kwargs or {})}
    if not arch:
        raise CheckpointError("no architecture given; expected a zoo architecture or model code package.module:factory")
    options = dict(dataset_options or {})
    data = load_or_outline(dataset, data_root=data_root, seed=seed, target=options.pop("target", None),
                           group=options.pop("group", None), **options)
    imported = import_weights(source, fmt, arch, tuple(data.input_shape), num_classes or data.num_classes,
                              model_options=model_options, format_options=format_options)
    imported.record["dataset_files"] = _files_note(data)
    kind = "linearized" if imported.linearized else "base"
    metadata: dict[str, Any] = {"kind": kind, "dataset": dataset_reference(data), "seed": seed,
                                "relu_count": imported.record["relu_count"], "imported_from": imported.record}
    if kind == "linearized":
        metadata["method"] = f"imported ({fmt})"
    return load_checkpoint(Checkpoint(imported.model, imported.spec, metadata).save(out))


def _files_note(data: DatasetBundle | DatasetOutline) -> str:
    """The import record's word on the dataset's files: "read" when they were loaded (or the dataset is embedded),
    else what was missing and that nothing was evaluated."""
    if not isinstance(data, DatasetOutline):
        return "read"
    return (f"absent ({data.missing}): nothing was evaluated on them; the shape and names are the registry's for "
            f"{data.name}; linearize, finetune and audit need the files")


def needs_import(path: str | Path) -> bool:
    """Whether ``path`` is a file to import (a .pth-like file, or a .safetensors without a FairLin sidecar)."""
    path = Path(path)
    if path.is_dir() or path.suffix == ".json" or not importable(path.name):
        return False
    return not (path.name.lower().endswith(".safetensors") and path.with_suffix(".json").exists())


def ensure_checkpoint(path: str | Path, dest_dir: str | Path, **import_args: Any) -> Path:
    """``path`` itself when it is a FairLin checkpoint, else its import into ``dest_dir`` (named
    ``<stem>-<sha256[:10]>``, reused when already there, re-imported over weights left without their sidecar)
    with ``import_args`` of :func:`import_checkpoint`."""
    path = Path(path)
    if not needs_import(path):
        return path
    if not import_args.get("fmt") or not import_args.get("arch") or not import_args.get("dataset"):
        raise CheckpointError(f"{path.name} is not a FairLin checkpoint; to import it on the fly give --format, --arch "
                              f"(or --model-code) and --dataset, as for import-checkpoint")
    stem = path.name[: -len(next(s for s in IMPORT_SUFFIXES if path.name.lower().endswith(s)))]
    _check_source(path)
    out = Path(dest_dir) / f"{stem}-{file_digest(path)[:10]}.safetensors"
    if out.exists() and out.with_suffix(".json").exists():
        return out
    return import_checkpoint(path, out=out, overwrite=True, **import_args).path
