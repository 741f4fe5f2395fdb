"""Job configs: one linearization run described as plain, validated, JSON-serialisable data.

A :class:`JobConfig` names a base checkpoint, optionally another dataset, a method and a ReLU
budget, the SNL and finetune options, the mitigation (None = plain KD finetune), a seed and the
diagnostics wanted. ``validate()`` refuses bad configs before anything is queued and returns the
normalised config (absolute checkpoint path, every default filled in). ``canonical_hash()`` keys
the run store: equal configs hash equally whatever defaults were spelled out, ``data_root`` does not
count (where the data lives is no part of the experiment), and the checkpoint counts by its
resolved path *and* its content, so a replaced checkpoint is a different run.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import re
import threading
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ..audit import parse_diagnostics
from ..checkpoints import read_sidecar, resolve_checkpoint_path, sidecar_path
from ..data.registry import get_spec
from ..errors import FairLinError
from ..finetune import FinetuneConfig, MitigationConfig
from ..linearize import SNLConfig, get_linearizer, resolve_budget
from ..models import ModelSpec

HASH_FORMAT = 1
_PERCENT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*%\s*")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_DATASET_KEYS = ("name", "options", "target", "group", "seed")


@dataclass(frozen=True)
class JobConfig:
    """One run. Field by field:

    checkpoint: base checkpoint (.safetensors, its .json or a folder holding one).
    method: ``snl``, ``deepreduce`` or ``random``.
    budget: ReLUs to keep as given: an int count, a float fraction in (0, 1] or text ("500", "0.1", "10%").
    seed: seed of SNL, random placement and finetuning.
    dataset: None = the checkpoint's own data; else ``{"name", "options", "target", "group", "seed"}``.
    snl: :class:`~fairlin_core.linearize.SNLConfig` fields to override (e.g. epochs, mask_lr, lam).
    finetune: :class:`~fairlin_core.finetune.FinetuneConfig` fields (e.g. epochs, lr, temperature,
    kd_weight, ce_weight).
    mitigation: None = plain KD finetune; ``{"mu", "tolerance"}`` = the fairness-constrained finetune.
    diagnostics: audit diagnostics to run on the saved model (``accuracy``, ``grad``, ...; empty = none).
    data_root: folder holding the datasets (None = $FAIRLIN_DATA_ROOT, else ./data); not hashed.
    """

    checkpoint: str
    method: str
    budget: int | float | str
    seed: int = 0
    dataset: dict[str, Any] | None = None
    snl: dict[str, Any] = field(default_factory=dict)
    finetune: dict[str, Any] = field(default_factory=dict)
    mitigation: dict[str, Any] | None = None
    diagnostics: list[str] = field(default_factory=list)
    data_root: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> JobConfig:
        """Build from a JSON object; unknown or missing keys are a FairLinError."""
        if not isinstance(data, dict):
            raise FairLinError(f"a job config must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise FairLinError(f"unknown job config key(s) {', '.join(unknown)}; valid keys: "
                               f"{', '.join(sorted(names))}")
        missing = [k for k in ("checkpoint", "method", "budget") if k not in data]
        if missing:
            raise FairLinError(f"job config lacks {', '.join(missing)}; expected checkpoint, method and budget")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    def validate(self) -> JobConfig:
        """The normalised config (absolute checkpoint path, defaults filled in); FairLinError if invalid."""
        linearizer = get_linearizer(self.method)
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral) or self.seed < 0:
            raise FairLinError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise FairLinError(f"data_root must be a path (a string) or null, got {self.data_root!r}")
        weights = resolve_checkpoint_path(_text(self.checkpoint, "checkpoint")).resolve()
        sidecar = read_sidecar(weights)
        spec = ModelSpec.from_dict(sidecar["model"])
        budget = _normalise_budget(self.budget)
        base_count = sidecar.get("relu_count")
        if isinstance(base_count, int):
            resolve_budget(budget, base_count)
        linearizer.check(spec)
        diagnostics = list(parse_diagnostics(self.diagnostics)) if self.diagnostics else []
        if diagnostics and self.dataset is not None:
            raise FairLinError("diagnostics audit the linearized model on the checkpoint's own dataset; expected "
                               "no dataset override when diagnostics are requested")
        return replace(self, checkpoint=str(weights), budget=budget, seed=int(self.seed),
                       dataset=_normalise_dataset(self.dataset), snl=_filled(SNLConfig, self.snl, "snl"),
                       finetune=_filled(FinetuneConfig, self.finetune, "finetune"),
                       mitigation=None if self.mitigation is None else _filled(MitigationConfig, self.mitigation,
                                                                               "mitigation"),
                       diagnostics=diagnostics)

    def canonical(self) -> dict[str, Any]:
        """What the hash covers: the validated config without data_root, the budget as a number, and the
        checkpoint's content hash next to its path."""
        config = self.validate().to_dict()
        del config["data_root"]
        budget = config["budget"]
        if isinstance(budget, str):
            config["budget"] = float(budget.strip()[:-1]) / 100.0
        config["checkpoint_sha256"] = checkpoint_digest(Path(config["checkpoint"]))
        config["hash_format"] = HASH_FORMAT
        return config

    def canonical_hash(self) -> str:
        """sha256 (hex) of the canonical JSON (sorted keys, no whitespace)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()


def option_defaults() -> dict[str, dict[str, Any]]:
    """The default of every option section: {"snl": {...}, "finetune": {...}, "mitigation": {...}}."""
    return {"snl": asdict(SNLConfig()), "finetune": asdict(FinetuneConfig()), "mitigation": asdict(MitigationConfig())}


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FairLinError(f"{name} must be a non-empty path, got {value!r}")
    return value


def _normalise_budget(budget: Any) -> int | float | str:
    """Numeric text becomes an int or float; percentages stay text ("10%"); anything else is refused."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, str)):
        raise FairLinError(f"budget {budget!r} has the wrong type; expected a ReLU count (500), a fraction of the "
                           f"base count (0.1) or a percentage (\"10%\")")
    if isinstance(budget, str):
        if _PERCENT.fullmatch(budget):
            return budget.strip().replace(" ", "")
        if _INTEGER.fullmatch(budget):
            return int(budget)
        try:
            return float(budget)
        except ValueError:
            raise FairLinError(f"budget {budget!r} is not a number; expected a ReLU count (500), a fraction of "
                               f"the base count (0.1) or a percentage (10%)") from None
    return budget


def _filled(kind: type, given: Any, name: str) -> dict[str, Any]:
    """Every field of dataclass ``kind`` with ``given`` applied, after the class's own validation."""
    if not isinstance(given, dict):
        raise FairLinError(f"{name} options must be a JSON object, got {given!r}")
    valid = {f.name for f in fields(kind)}
    unknown = sorted(set(given) - valid)
    if unknown:
        raise FairLinError(f"unknown {name} option(s) {', '.join(unknown)}; valid: {', '.join(sorted(valid))}")
    defaults = asdict(kind())
    typed = {}
    for key, value in given.items():
        whole = isinstance(defaults[key], int)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral if whole else numbers.Real):
            raise FairLinError(f"{name} option {key} must be {'an integer' if whole else 'a number'}, got {value!r}")
        typed[key] = int(value) if whole else float(value)
    instance = kind(**typed)
    instance.validate()
    return asdict(instance)


def _normalise_dataset(dataset: Any) -> dict[str, Any] | None:
    """{"name", "options", "target", "group", "seed"} with the dataset's defaults filled in."""
    if dataset is None:
        return None
    if not isinstance(dataset, dict) or "name" not in dataset:
        raise FairLinError(f"dataset must be null or an object with a name, got {dataset!r}")
    unknown = sorted(set(dataset) - set(_DATASET_KEYS))
    if unknown:
        raise FairLinError(f"unknown dataset key(s) {', '.join(unknown)}; valid: {', '.join(_DATASET_KEYS)}")
    spec = get_spec(dataset["name"])
    options = dataset.get("options") or {}
    if not isinstance(options, dict):
        raise FairLinError(f"dataset options must be a JSON object, got {options!r}")
    bad = sorted(set(options) - set(spec.defaults))
    if bad:
        raise FairLinError(f"unknown option(s) {', '.join(bad)} for dataset {spec.name!r}; valid options: "
                           f"{', '.join(spec.defaults)}")
    target = dataset.get("target") or spec.default_target
    group = dataset.get("group") or spec.default_group
    for role, value in (("target", target), ("group", group)):
        if spec.attributes is not None and value not in spec.attributes:
            raise FairLinError(f"{role} {value!r} is not an attribute of {spec.name}; valid: "
                               f"{', '.join(spec.attributes)}")
    seed = dataset.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise FairLinError(f"dataset seed must be a non-negative integer, got {seed!r}")
    return {"name": spec.name, "options": {**spec.defaults, **options}, "target": target, "group": group,
            "seed": int(seed)}


_digests: dict[tuple[str, int, int, int, int], str] = {}
_digests_lock = threading.Lock()


def checkpoint_digest(weights: Path) -> str:
    """sha256 (hex) over the weights file then its JSON sidecar; cached per (path, sizes, mtimes in ns)."""
    side = sidecar_path(weights)
    w, s = weights.stat(), side.stat()
    key = (str(weights), w.st_size, w.st_mtime_ns, s.st_size, s.st_mtime_ns)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    digest = hashlib.sha256()
    for path in (weights, side):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    with _digests_lock:
        _digests[key] = digest.hexdigest()
    return _digests[key]
