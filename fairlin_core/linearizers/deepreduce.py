"""DeepReDuce configurations (Jha et al. 2021): stage culling, thinning and a stride-2 stem.

Culling a stage linearizes every activation of its blocks; thinning linearizes the post-add
activation (role ``output``) of every block in the stages that keep their ReLUs; a stride-2 stem
(rho = 0.5) is an architecture change (``stem_stride=2``): the same weights on 4x smaller maps.
A requested budget maps to the configuration whose ReLU count is nearest (ties: the base stem,
then fewer stages culled, then no thinning); culling every stage (a linear network) is never chosen.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from ..data import DatasetBundle
from ..errors import FairLinError
from ..models import CODE_MODEL, ModelSpec, activation_sites, build_model, resolve_spec, set_stage_masks
from ..models.instrumentation import has_stages
from ..models.resnet import ResNet
from ..runtime import CancelFlag, ProgressFn
from .options import DeepReduceConfig, LinearizeOptions
from .base import Linearizer, Placement, register_linearizer


RESNETS = ("resnet18", "resnet34")


def _refuse(what: str) -> FairLinError:
    return FairLinError(f"DeepReDuce needs ResNet stages (layer1..layer4): it works on the zoo's ResNets "
                        f"({', '.join(RESNETS)}) and on torchvision ResNets, got {what}; use snl or random for "
                        f"other architectures")


def _check_staged(model: nn.Module) -> None:
    if not (isinstance(model, ResNet) or has_stages(model)):
        raise _refuse(type(model).__name__)


def apply_deepreduce(model: nn.Module, config: DeepReduceConfig) -> None:
    """Set the masks of a ResNet in place: 0 for culled/thinned sites, 1 elsewhere (a stem ReLU stays).

    The stem stride is part of the architecture: build the model with ``stem_stride`` first.
    """
    _check_staged(model)
    try:
        set_stage_masks(model, config.cull, config.thin)
    except ValueError as error:
        raise FairLinError(str(error)) from None


def stem_strides_of(base: ModelSpec) -> tuple[int, ...]:
    """The stem strides a DeepReDuce student of ``base`` may have: 1 and 2 for the CIFAR stem, else 1."""
    return (1, 2) if base.name in RESNETS and base.options.get("stem", "cifar") == "cifar" else (1,)


def student_spec(base: ModelSpec, config: DeepReduceConfig) -> ModelSpec:
    """The base architecture with the configuration's stem stride (a torchvision or instrumented ResNet
    keeps its own stem: stride 1 only)."""
    if base.name == CODE_MODEL:
        if not has_stages(build_model(base)):
            raise _refuse(f"model code {base.options.get('factory')} without layer1..layer4 stages")
    elif base.name not in RESNETS:
        raise _refuse(base.name)
    if config.stem_stride not in stem_strides_of(base):
        raise FairLinError(f"a stride-2 stem needs the CIFAR stem; {base.name} with options {base.options} keeps "
                           f"its own stem (expected stem_stride 1)")
    if base.name == CODE_MODEL:
        return base
    return resolve_spec(base.name, base.num_classes, base.input_shape, **{**base.options,
                                                                          "stem_stride": config.stem_stride})


def configuration_counts(base: ModelSpec, stem_strides: tuple[int, ...] = (1, 2)) -> list[tuple[DeepReduceConfig, int]]:
    """Every configuration (all proper subsets of stages culled x thin x stem stride) with its ReLU count."""
    results = []
    for stride in (s for s in stem_strides if s in stem_strides_of(base)):
        model = build_model(student_spec(base, DeepReduceConfig(stem_stride=stride)))
        sites = [site for _, site in activation_sites(model)]
        stages = sorted({site.stage for site in sites} - {0})
        for size in range(len(stages)):
            for cull in itertools.combinations(stages, size):
                for thin in (False, True):
                    count = sum(site.alpha.numel() for site in sites
                                if site.stage not in cull and not (thin and site.role == "output"))
                    results.append((DeepReduceConfig(tuple(cull), thin, stride), count))
    return results


def nearest_configuration(base: ModelSpec, budget: int, stem_strides: tuple[int, ...] = (1, 2)) -> tuple[DeepReduceConfig, int]:
    """The configuration whose ReLU count is nearest to ``budget`` (see module docstring for ties)."""
    base_stride = base.options.get("stem_stride", 1)
    candidates = configuration_counts(base, stem_strides)
    return min(candidates, key=lambda item: (abs(item[1] - budget), item[0].stem_stride != base_stride,
                                             len(item[0].cull), item[0].thin))


class DeepReDuce(Linearizer):
    """DeepReDuce on ResNets: each budget gets ``options.deepreduce`` or else its nearest configuration
    over ``options.stem_strides``; the student is rebuilt with that configuration's stem stride and
    loaded with the base weights."""

    name = "deepreduce"

    def check(self, base_spec: ModelSpec) -> None:
        student_spec(base_spec, DeepReduceConfig())

    def student_key(self, base_spec: ModelSpec, budget: int) -> str | None:
        config, count = nearest_configuration(base_spec, budget)
        return f"DeepReDuce's nearest configuration ({config.describe()}, {count} ReLUs)"

    def place_masks(self, base: nn.Module, base_spec: ModelSpec, bundle: DatasetBundle, budgets: Sequence[int],
                    options: LinearizeOptions, *, seed: int, device: torch.device,
                    progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> list[Placement]:
        weights = {k: v for k, v in base.state_dict().items() if not k.endswith(".alpha")}
        placements = []
        for budget in budgets:
            config = options.deepreduce
            if config is None:
                config, _ = nearest_configuration(base_spec, budget, options.stem_strides)
            spec = student_spec(base_spec, config)
            student = build_model(spec)
            student.load_state_dict(weights, strict=False)
            apply_deepreduce(student, config)
            placements.append(Placement(student.eval(), spec, config.to_dict(), pd.DataFrame()))
        return placements


register_linearizer(DeepReDuce())
