"""The linearizer protocol and its registry: every method places masks through one call, looked up by name.

A linearizer turns a trained base model (every ReLU on) into one student per ReLU budget: a model
whose activation masks (``site.alpha``, one entry per ReLU, 1 = ReLU kept, 0 = identity) are binary
and frozen. ``api.prepare_students`` evaluates the students and ``api.finish`` finetunes each one
with the base model as KD teacher, the same for every method. A new method subclasses
:class:`Linearizer` and calls :func:`register_linearizer`; it is then usable by name everywhere the
API takes a method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd
import torch
from torch import nn

from ..data import DatasetBundle
from ..models import ModelSpec
from ..registry import Registry
from ..runtime import CancelFlag, ProgressFn
from .options import LinearizeOptions



@dataclass
class Placement:
    """One budget's student as a linearizer leaves it: masks binary and frozen, not yet finetuned.

    spec: the student's architecture (the base spec unless the method changes it, e.g. DeepReDuce's
    stride-2 stem); configuration: JSON-ready facts about how the masks were chosen; history:
    per-epoch rows of the placement stage (empty when it does not train).
    """

    model: nn.Module
    spec: ModelSpec
    configuration: dict[str, Any]
    history: pd.DataFrame


class Linearizer(ABC):
    """A way of placing masks under ReLU budgets.

    name: the method's name in the API, CLI and job configs. placing_share: the share in [0, 1] of a
    sweep's progress spent in :meth:`place_masks` (the finetunes share the rest); 0 for methods that
    place masks without training.
    """

    name: ClassVar[str]
    placing_share: ClassVar[float] = 0.0

    def check(self, base_spec: ModelSpec) -> None:
        """Raise FairLinError when this method cannot linearize a ``base_spec`` model; called before any work."""

    def student_key(self, base_spec: ModelSpec, budget: int) -> str | None:
        """A description of the student ``budget`` (a ReLU count) maps to, when several budgets can map to
        the same one: budgets with equal keys give equal students, so a grid runs only the first.
        None (the default): every budget gets its own student."""
        return None

    @abstractmethod
    def place_masks(self, base: nn.Module, base_spec: ModelSpec, bundle: DatasetBundle, budgets: Sequence[int],
                    options: LinearizeOptions, *, seed: int, device: torch.device,
                    progress: ProgressFn | None = None, cancel: CancelFlag | None = None) -> list[Placement]:
        """One placement per budget, in the order of ``budgets`` (ReLU counts, each 1..the base count).

        base: the trained base model in eval mode with every mask at 1; it is the finetune's teacher
        and must be left unchanged (place masks on copies). seed: the only source of randomness.
        progress: reports this stage's own [0, 1]; cancel: polled at least once per batch of training.
        """


LINEARIZERS: Registry[Linearizer] = Registry("linearizer", unknown="method")


def register_linearizer(linearizer: Linearizer) -> Linearizer:
    """Make ``linearizer`` available under its name; returns it. FairLinError if the name is taken."""
    return LINEARIZERS.register(linearizer.name, linearizer)


def get_linearizer(name: str) -> Linearizer:
    """The linearizer registered as ``name``; FairLinError naming the known methods otherwise."""
    return LINEARIZERS.lookup(name)
