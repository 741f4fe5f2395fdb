"""Model zoo registry: build any model from a JSON-ready spec, with validated options."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from ..errors import ModelError
from .instrument import CODE_MODEL, build_code_model, code_options
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
        try:
            return cls(str(data["name"]), int(data["num_classes"]), tuple(int(s) for s in data["input_shape"]),
                       dict(data.get("options", {})))
        except (KeyError, TypeError, ValueError) as error:
            raise ModelError(f"model spec is malformed ({error!r}); expected keys name, num_classes, "
                             f"input_shape, options") from error


def resolve_spec(name: str, num_classes: int, input_shape: tuple[int, ...], **options: Any) -> ModelSpec:
    """Validate ``options`` against the zoo entry (None values mean default) and fill in defaults.

    ``name`` ``code`` is a model built by the user's own factory (:mod:`.instrument`), options
    ``factory`` ("package.module:function") and ``kwargs``.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if name == CODE_MODEL:
        return ModelSpec(name, int(num_classes), input_shape, code_options(options))
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
    kind = MODELS[name]
    known = [*kind.defaults, *kind.choices]
    unknown = sorted(k for k, v in options.items() if v is not None and k not in known)
    if unknown:
        raise ModelError(f"model {name} does not take option(s) {', '.join(unknown)}; it takes {', '.join(known)}")
    resolved = dict(kind.defaults)
    resolved.update({k: v for k, v in options.items() if v is not None and k in kind.defaults})
    for key, value in resolved.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ModelError(f"model option {key} must be a positive integer, got {value!r}")
    for key, allowed in kind.choices.items():
        value = options.get(key)
        if value is not None and value not in allowed:
            raise ModelError(f"model option {key} must be one of {', '.join(allowed)}, got {value!r}")
        if value is not None and value != allowed[0]:
            resolved[key] = value
    if resolved.get("stem_stride", 1) not in (1, 2):
        raise ModelError(f"stem_stride must be 1 or 2, got {resolved['stem_stride']}")
    if resolved.get("stem") == "imagenet" and resolved.get("stem_stride", 1) != 1:
        raise ModelError("stem_stride applies to the CIFAR stem only; the ImageNet stem has its own strides "
                         "(expected stem_stride=1 with stem=imagenet)")
    if kind.images and len(input_shape) != 3:
        raise ModelError(f"model {name} needs image input (C, H, W), got input shape {input_shape}; "
                         f"use mlp for vector data")
    return ModelSpec(name, int(num_classes), input_shape, resolved)


def build_model(spec: ModelSpec) -> nn.Module:
    """A freshly initialised model for ``spec`` (every mask at 1, i.e. all ReLUs on).

    A ``code`` spec imports and calls the user's factory, only where model code is trusted
    (:func:`~fairlin_core.models.instrument.build_code_model`)."""
    spec = resolve_spec(spec.name, spec.num_classes, spec.input_shape, **spec.options)
    if spec.name == CODE_MODEL:
        return build_code_model(spec.options, spec.input_shape)
    return MODELS[spec.name].builder(spec.num_classes, spec.input_shape, **spec.options)
