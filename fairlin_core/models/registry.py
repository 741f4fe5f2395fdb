"""Model zoo registry: build any model from a JSON-ready spec, with validated options and bounded sizes.

Every size a user or a sidecar can set is bounded here (``LIMITS``: options, classes, input shape) and
the whole model too (``MAX_STATE_VALUES``: its parameters, buffers and masks, counted on the meta device,
where nothing is allocated), so a hostile spec is refused before any memory is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..errors import ModelError, brief, clip
from .instrumentation import CODE_MODEL, build_code_model, code_options
from .mlp import mlp
from .resnet import STEMS, resnet18, resnet34
from .vgg import vgg19_bn
from .wideresnet import wrn22_8


@dataclass(frozen=True)
class ModelKind:
    """A zoo entry: the builder, its option defaults, and whether it takes image input.

    defaults: positive-integer options, always recorded in a spec. choices: string options, name ->
    allowed values (the first is the default); recorded in a spec only when not the default, so the
    specs of existing checkpoints stay as they were.
    """

    builder: Callable[..., nn.Module]
    defaults: dict[str, Any]
    images: bool
    description: str
    choices: dict[str, tuple[str, ...]] = field(default_factory=dict)


MODELS: dict[str, ModelKind] = {
    "resnet18": ModelKind(resnet18, {"width": 64, "stem_stride": 1}, True,
                          "CIFAR-style ResNet18; width = stage-1 channels (64 = standard); stem=imagenet is "
                          "torchvision's resnet18", {"stem": STEMS}),
    "resnet34": ModelKind(resnet34, {"width": 64, "stem_stride": 1}, True,
                          "CIFAR-style ResNet34; width = stage-1 channels (64 = standard); stem=imagenet is "
                          "torchvision's resnet34", {"stem": STEMS}),
    "vgg19_bn": ModelKind(vgg19_bn, {"width": 64}, True, "VGG19 with batch norm; width = first conv channels"),
    "wrn22_8": ModelKind(wrn22_8, {"width": 8}, True, "WideResNet-22; width = widen factor (8 = WRN-22-8)"),
    "mlp": ModelKind(mlp, {"depth": 2, "width": 16}, False, "ReLU MLP; depth hidden layers of width units"),
}


# Upper bounds of every size in a spec (all sizes are integers >= 1). Far above what runs on a CPU, far
# below what exhausts a machine; MAX_STATE_VALUES bounds their combination.
LIMITS: dict[str, int] = {"width": 4096, "depth": 64, "num_classes": 100_000, "channels": 64,
                          "image_side": 1024, "features": 1_000_000}
MAX_STATE_VALUES = 2**28  # parameters + buffers + mask entries of one model (1 GiB of float32)


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model: zoo name, output classes, input shape, options."""

    name: str
    num_classes: int
    input_shape: tuple[int, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["input_shape"] = list(self.input_shape)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelSpec":
        """The spec of a JSON object (e.g. a sidecar's ``model``), with its types checked (not its sizes:
        :func:`resolve_spec` bounds those)."""
        expected = "expected keys name (text), num_classes (integer), input_shape (list of integers), options (object)"
        if not isinstance(data, dict) or not {"name", "num_classes", "input_shape"} <= set(data):
            raise ModelError(f"model spec {brief(data)} is malformed; {expected}")
        name, classes, shape, options = (data["name"], data["num_classes"], data["input_shape"],
                                         data.get("options", {}))
        if not isinstance(name, str) or not _is_int(classes) or not isinstance(shape, (list, tuple)) \
                or not all(_is_int(s) for s in shape) or not isinstance(options, dict):
            raise ModelError(f"model spec is malformed (name {brief(name)}, num_classes {brief(classes)}, "
                             f"input_shape {brief(shape)}, options {brief(options)}); {expected}")
        return cls(name, int(classes), tuple(int(s) for s in shape), dict(options))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_size(what: str, value: Any, limit: str) -> int:
    if not _is_int(value) or not 1 <= value <= LIMITS[limit]:
        raise ModelError(f"{what} must be a positive integer at most {LIMITS[limit]:,}, got {brief(value)}")
    return int(value)


def resolve_spec(name: str, num_classes: int, input_shape: tuple[int, ...], **options: Any) -> ModelSpec:
    """Validate ``options`` against the zoo entry (None values mean default), bound every size (``LIMITS``)
    and fill in defaults.

    ``name`` ``code`` is a model built by the user's own factory (:mod:`.instrument`), options
    ``factory`` ("package.module:function") and ``kwargs``.
    """
    if name == CODE_MODEL:
        return ModelSpec(name, _check_size("num_classes", num_classes, "num_classes"),
                         tuple(int(s) for s in input_shape), code_options(options))
    if not isinstance(name, str) or name not in MODELS:
        raise ModelError(f"unknown model {brief(name)}; expected one of {', '.join(MODELS)}")
    kind = MODELS[name]
    known = [*kind.defaults, *kind.choices]
    unknown = sorted(str(k) for k, v in options.items() if v is not None and k not in known)
    if unknown:
        raise ModelError(f"model {name} does not take option(s) {clip(', '.join(unknown))}; "
                         f"it takes {', '.join(known)}")
    resolved = dict(kind.defaults)
    resolved.update({k: v for k, v in options.items() if v is not None and k in kind.defaults})
    for key, value in resolved.items():
        if key in LIMITS:
            _check_size(f"model option {key}", value, key)
        elif not _is_int(value) or value < 1:
            raise ModelError(f"model option {key} must be a positive integer, got {brief(value)}")
    for key, allowed in kind.choices.items():
        value = options.get(key)
        if value is not None and value not in allowed:
            raise ModelError(f"model option {key} must be one of {', '.join(allowed)}, got {brief(value)}")
        if value is not None and value != allowed[0]:
            resolved[key] = value
    if resolved.get("stem_stride", 1) not in (1, 2):
        raise ModelError(f"stem_stride must be 1 or 2, got {brief(resolved['stem_stride'])}")
    if resolved.get("stem") == "imagenet" and resolved.get("stem_stride", 1) != 1:
        raise ModelError("stem_stride applies to the CIFAR stem only; the ImageNet stem has its own strides "
                         "(expected stem_stride=1 with stem=imagenet)")
    num_classes = _check_size("num_classes", num_classes, "num_classes")
    input_shape = tuple(input_shape)
    if kind.images:
        if len(input_shape) != 3:
            raise ModelError(f"model {name} needs image input (C, H, W), got input shape {brief(input_shape)}; "
                             f"use mlp for vector data")
        _check_size("input channels", input_shape[0], "channels")
        for side in input_shape[1:]:
            _check_size("input height and width", side, "image_side")
    else:
        if not input_shape:
            raise ModelError("input shape is empty; expected at least one dimension, e.g. (2,)")
        for size in input_shape:
            _check_size("every input dimension", size, "features")
        _check_size("input features (the product of the input shape)", math.prod(input_shape), "features")
    return ModelSpec(name, num_classes, tuple(int(s) for s in input_shape), resolved)


def state_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in the state dict of ``spec``'s model, built on the meta device (nothing
    is allocated); ModelError when the model would hold more than ``MAX_STATE_VALUES`` values."""
    spec = resolve_spec(spec.name, spec.num_classes, spec.input_shape, **spec.options)
    if spec.name == CODE_MODEL:  # the user's own, trusted factory: built for real (its size is the user's choice)
        return {name: tuple(t.shape) for name, t in build_model(spec).state_dict().items()}
    with torch.device("meta"):
        model = MODELS[spec.name].builder(spec.num_classes, spec.input_shape, **spec.options)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    values = sum(math.prod(shape) for shape in shapes.values())
    if values > MAX_STATE_VALUES:
        raise ModelError(f"model {spec.name} with options {spec.options}, {spec.num_classes} classes and input "
                         f"{spec.input_shape} would hold {values:,} values ({values * 4 / 2**30:.1f} GiB); the limit "
                         f"is {MAX_STATE_VALUES:,}; expected a smaller width, depth or input size")
    return shapes


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model for ``spec`` (every mask at 1, i.e. all ReLUs on); its size is checked
    first, without allocating (:func:`state_shapes`). A ``code`` spec imports and calls the user's factory, only
    where that factory is trusted (:func:`~fairlin_core.models.instrumentation.build_code_model`)."""
    spec = resolve_spec(spec.name, spec.num_classes, spec.input_shape, **spec.options)
    if spec.name == CODE_MODEL:
        return build_code_model(spec.options, spec.input_shape)
    state_shapes(spec)
    return MODELS[spec.name].builder(spec.num_classes, spec.input_shape, **spec.options)
