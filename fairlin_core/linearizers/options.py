"""The linearizers' options as plain data: SNL's schedule, a DeepReDuce configuration, and the options of
one linearization (:class:`LinearizeOptions`), which every :class:`~.base.Linearizer` takes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import FairLinError
from ..finetune import FinetuneConfig
from ..limits import POSITIVE, PROPER_FRACTION, Interval, check_count, check_real
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
        check_count(self.epochs, "SNL epochs", "epochs")
        check_count(self.lam_patience_epochs, "SNL lam_patience_epochs", "epochs", minimum=0)
        for name in ("lr", "mask_lr", "lam", "temperature"):
            check_real(getattr(self, name), f"SNL {name}", POSITIVE)
        check_real(self.lam_growth, "SNL lam_growth", Interval(1.0))
        check_real(self.lam_min_progress, "SNL lam_min_progress", PROPER_FRACTION)
        check_real(self.threshold, "SNL threshold", PROPER_FRACTION)
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

    def validate(self) -> LinearizeOptions:
        """``self`` once SNL's and the finetune's options are valid (SNL's too where the method is not snl: a bad
        option is refused whether or not this run reads it)."""
        self.snl.validate()
        self.finetune.validate()
        return self

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


