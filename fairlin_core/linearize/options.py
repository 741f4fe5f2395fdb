"""The linearizers' options as plain data: SNL's schedule, a DeepReDuce configuration, and the options of
one linearization (:class:`LinearizeOptions`), which every :class:`~.base.Linearizer` takes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import FairLinError
from ..finetune import FinetuneConfig
from ..models import RELU_THRESHOLD


@dataclass(frozen=True)
class SNLConfig:
    """epochs: at most this many SNL epochs; lr (weights) and mask_lr (masks) for Adam; lam and its
    growth; temperature of KD; batch_size; threshold that counts a ReLU as on."""

    epochs: int = 100
    lr: float = 1e-3
    mask_lr: float = 2e-2
    lam: float = 3e-3
    lam_growth: float = 1.1
    lam_patience_epochs: int = 5
    lam_min_progress: float = 0.1
    temperature: float = 4.0
    batch_size: int = 64
    threshold: float = RELU_THRESHOLD

    def validate(self) -> None:
        if self.epochs < 1:
            raise FairLinError(f"SNL epochs must be >= 1, got {self.epochs}")
        for name in ("lr", "mask_lr", "lam", "temperature"):
            if not getattr(self, name) > 0:
                raise FairLinError(f"SNL {name} must be > 0, got {getattr(self, name)}")
        if self.lam_growth < 1:
            raise FairLinError(f"SNL lam_growth must be >= 1, got {self.lam_growth}")
        if not 0 <= self.lam_min_progress < 1:
            raise FairLinError(f"SNL lam_min_progress must be in [0, 1), got {self.lam_min_progress}")
        if self.batch_size < 2:
            raise FairLinError(f"SNL batch_size must be >= 2, got {self.batch_size}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



@dataclass(frozen=True)
class DeepReduceConfig:
    """cull: 1-based stages whose ReLUs are all removed; thin: drop post-add ReLUs of kept stages;
    stem_stride: 1, or 2 for DeepReDuce's rho = 0.5 variant."""

    cull: tuple[int, ...] = ()
    thin: bool = False
    stem_stride: int = 1

    def describe(self) -> str:
        text = "stages " + ",".join(map(str, self.cull)) + " culled" if self.cull else "no stage culled"
        text += " + thinned" if self.thin else ""
        return text + (" + stride-2 stem" if self.stem_stride == 2 else "")

    def to_dict(self) -> dict:
        return {"cull": list(self.cull), "thin": self.thin, "stem_stride": self.stem_stride,
                "description": self.describe()}



@dataclass(frozen=True)
class LinearizeOptions:
    """snl: SNL schedule; finetune: the finetune after every method; exact: SNL keeps exactly the budget
    (top-k masks) instead of the reference threshold rule; deepreduce: an explicit configuration
    (None = the nearest to the budget); stem_strides: stem strides DeepReDuce may pick from; precision:
    ``fp32`` (default, reproducible) or ``bf16`` (autocast of SNL and finetune forward passes, CUDA only)."""

    snl: SNLConfig = field(default_factory=SNLConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    exact: bool = True
    deepreduce: DeepReduceConfig | None = None
    stem_strides: tuple[int, ...] = (1, 2)
    precision: str = "fp32"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["deepreduce"] = self.deepreduce.to_dict() if self.deepreduce else None
        return data

    def with_epochs(self, snl_epochs: int | None = None, finetune_epochs: int | None = None) -> "LinearizeOptions":
        """A copy with SNL's maximum epochs and/or the finetune's epochs replaced (None keeps them)."""
        options = self
        if snl_epochs is not None:
            options = replace(options, snl=replace(options.snl, epochs=snl_epochs))
        if finetune_epochs is not None:
            options = replace(options, finetune=replace(options.finetune, epochs=finetune_epochs))
        return options


