"""Job configs: one run described as plain, validated, JSON-serialisable data.

Two kinds: :class:`JobConfig` (``linearize``, the default) and :class:`TrainBaseConfig`
(``train-base``: a fresh base checkpoint for the user checkpoint folder). :func:`config_from_dict`
reads either back from its dict (a ``kind`` key marks train-base configs; linearize dicts have none,
so every linearize config, its dict and its hash are what they were before train-base jobs existed).

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
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

from ..audits import parse_diagnostics
from ..checkpoints import (MAX_SIDECAR_BYTES, MAX_WEIGHTS_BYTES, load_dataset_for, read_sidecar,
                           resolve_checkpoint_path, sidecar_path)
from ..checkpoints.upload import SAFE_NAME
from ..data import load_dataset
from ..data.registry import get_spec
from ..errors import CheckpointError, FairLinError, brief, check_seed, clip
from ..finetune import FinetuneConfig, MitigationConfig
from ..finetune.fair import NONE
from ..inputs import open_regular
from ..limits import check_count, check_real
from ..linearizers import SNLConfig, get_linearizer, resolve_budget
from ..models import MODELS, ModelSpec, resolve_spec, state_shapes
from ..runtime import PRECISIONS
from .paths import user_checkpoint_dir

# 2: mitigation method/normalize/lambda_max/eta and finetune select/select_tolerance joined the config (issue 17);
# every linearize hash changed, so runs stored under format 1 stay listed and shown but are not reused.
HASH_FORMAT = 2
TRAIN_BASE_HASH_FORMAT = 1  # train-base configs did not change
LINEARIZE = "linearize"
TRAIN_BASE = "train-base"
KINDS = (LINEARIZE, TRAIN_BASE)
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
    snl: :class:`~fairlin_core.linearizers.SNLConfig` fields to override (e.g. epochs, mask_lr, lam).
    finetune: :class:`~fairlin_core.finetune.FinetuneConfig` fields (e.g. epochs, lr, temperature,
    kd_weight, ce_weight).
    mitigation: None (or ``"none"``) = plain KD finetune; a method name (``"lagrangian"``, ``"reweight"``,
    ``"groupdro"``) or :class:`~fairlin_core.finetune.MitigationConfig` fields (``{"method", "mu", "tolerance",
    "normalize", "lambda_max", "eta"}``; a dict without ``method`` is the lagrangian, as stored before methods).
    diagnostics: audit diagnostics to run on the saved model (``accuracy``, ``grad``, ...; empty = none).
    data_root: folder holding the datasets (None = $FAIRLIN_DATA_ROOT, else ./data); not hashed.
    precision: ``fp32`` (default) or ``bf16`` (bf16 autocast of the training forward passes on CUDA; a CPU run
    is fp32 whatever is asked). Hashed only when not fp32, so every fp32 config keeps the hash it had before
    the field existed.
    """

    kind: ClassVar[str] = LINEARIZE  # not a field: never in to_dict() nor in the hash

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
    precision: str = "fp32"

    @classmethod
    def from_dict(cls, data: Any) -> JobConfig:
        """Build from a JSON object; unknown or missing keys are a FairLinError."""
        return cls(**_config_fields(cls, data, "job config", ("checkpoint", "method", "budget")))

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (the inverse of :meth:`from_dict`)."""
        return asdict(self)

    def validate(self) -> JobConfig:
        """The normalised config (absolute checkpoint path, defaults filled in); FairLinError if invalid, or if the
        checkpoint's own dataset (no override given) does not fit its model."""
        linearizer = get_linearizer(self.method)
        check_seed(self.seed)
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise FairLinError(f"data_root must be a path (a string) or null, got {brief(self.data_root)}")
        if self.precision not in PRECISIONS:
            raise FairLinError(f"precision must be one of {', '.join(PRECISIONS)}, got {brief(self.precision)}")
        weights = resolve_checkpoint_path(_text(self.checkpoint, "checkpoint")).resolve()
        sidecar = read_sidecar(weights)
        try:  # the sidecar's sizes are bounded before anything is queued (nothing allocated)
            spec = ModelSpec.from_dict(sidecar["model"])
            state_shapes(spec)
        except FairLinError as error:
            raise CheckpointError(f"sidecar of {weights} describes no buildable model: {error}") from None
        if self.dataset is None:  # an override is checked against the model when the run loads it
            _check_own_data(json.dumps({k: sidecar.get(k) for k in ("model", "dataset")}, sort_keys=True),
                            self.data_root, str(weights))
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
                       mitigation=_mitigation(self.mitigation),
                       diagnostics=diagnostics)

    def canonical(self) -> dict[str, Any]:
        """What the hash covers: the validated config without data_root, the budget as a number, and the
        checkpoint's content hash next to its path."""
        config = self.validate().to_dict()
        del config["data_root"]
        if config["precision"] == "fp32":
            del config["precision"]
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


@dataclass(frozen=True)
class TrainBaseConfig:
    """One base-model training run (kind ``train-base``). Field by field:

    dataset: a dataset name, or ``{"name", "options", "target", "group", "seed"}`` (the dataset seed
    defaults to ``seed``, as in the CLI's ``train-base``).
    model: a model of the zoo (resnet18, resnet34, vgg19_bn, wrn22_8, mlp).
    name: the checkpoint's name (letters, digits, '_', '-', '.'); None = ``<dataset>_<model>[_w<width>]_s<seed>``.
    epochs: None = the recipe's default; else a positive integer.
    seed: seed of initialisation, shuffling and augmentation.
    model_options: width / depth / stem_stride (see ``relu-count --help``); defaults filled in.
    out_dir: folder the checkpoint goes into; None = ``<run store>/user_checkpoints`` (the manager
    fills in its own store's folder). A checkpoint of that name must not exist there yet.
    data_root: folder holding the datasets; not hashed.
    """

    kind: ClassVar[str] = TRAIN_BASE

    dataset: str | dict[str, Any]
    model: str
    name: str | None = None
    epochs: int | None = None
    seed: int = 0
    model_options: dict[str, Any] = field(default_factory=dict)
    out_dir: str | None = None
    data_root: str | None = None

    @classmethod
    def from_dict(cls, data: Any) -> TrainBaseConfig:
        """Build from a JSON object (its ``kind``, if present, must be train-base); FairLinError on bad keys."""
        if not isinstance(data, dict):
            raise FairLinError(f"a job config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        kind = data.pop("kind", TRAIN_BASE)
        if kind != TRAIN_BASE:
            raise FairLinError(f"job kind {brief(kind)} is not {brief(TRAIN_BASE)}")
        return cls(**_config_fields(cls, data, "train-base config", ("dataset", "model"), extra=("kind",)))

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict with ``"kind": "train-base"`` (the inverse of :meth:`from_dict`)."""
        return {"kind": TRAIN_BASE, **asdict(self)}

    @property
    def checkpoint_path(self) -> Path:
        """Where the trained weights go (a validated config: out_dir and name are filled in)."""
        return Path(str(self.out_dir)) / f"{self.name}.safetensors"

    def validate(self) -> TrainBaseConfig:
        """The normalised config (dataset and model options filled in, name and absolute out_dir set);
        FairLinError if invalid, if the model does not fit the dataset, or if the checkpoint exists."""
        if not isinstance(self.model, str) or self.model not in MODELS:
            raise FairLinError(f"unknown model {brief(self.model)}; expected one of {', '.join(MODELS)}")
        seed = check_seed(self.seed)
        if self.epochs is not None:
            check_count(self.epochs, "epochs", "epochs")
        if self.data_root is not None and not isinstance(self.data_root, str):
            raise FairLinError(f"data_root must be a path (a string) or null, got {brief(self.data_root)}")
        given = {"name": self.dataset} if isinstance(self.dataset, str) else self.dataset
        if not isinstance(given, dict):
            raise FairLinError(f"dataset must be a name or an object with a name, got {brief(self.dataset)}")
        dataset = _normalise_dataset({"seed": seed, **given})
        if not isinstance(self.model_options, dict):
            raise FairLinError(f"model_options must be a JSON object, got {brief(self.model_options)}")
        num_classes, input_shape = _data_shape(json.dumps(dataset, sort_keys=True), self.data_root)
        spec = resolve_spec(self.model, num_classes, input_shape, **self.model_options)
        name = self.name
        if name is None:
            width = self.model_options.get("width")
            name = f"{dataset['name']}_{self.model}{f'_w{width}' if width is not None else ''}_s{seed}"
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            raise FairLinError(f"checkpoint name {brief(name)} is not allowed; expected letters, digits, '_', '-' or '.' "
                               f"(at most 100 characters, not starting with '.', '_' or '-')")
        if self.out_dir is None:
            out_dir = user_checkpoint_dir()
        else:
            out_dir = Path(_text(self.out_dir, "out_dir")).expanduser().absolute()
        if (out_dir / f"{name}.safetensors").exists() or (out_dir / f"{name}.json").exists():
            raise FairLinError(f"a user checkpoint named {name} already exists in {out_dir}; choose another name")
        return replace(self, dataset=dataset, seed=seed, epochs=None if self.epochs is None else int(self.epochs),
                       model_options=dict(spec.options), name=name, out_dir=str(out_dir))

    def canonical(self) -> dict[str, Any]:
        """What the hash covers: the validated config (kind included) without data_root."""
        config = self.validate().to_dict()
        del config["data_root"]
        config["hash_format"] = TRAIN_BASE_HASH_FORMAT
        return config

    def canonical_hash(self) -> str:
        """sha256 (hex) of the canonical JSON (sorted keys, no whitespace)."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()


AnyConfig = JobConfig | TrainBaseConfig


def config_from_dict(data: Any) -> AnyConfig:
    """A JobConfig or TrainBaseConfig from its dict: ``kind`` absent or ``linearize`` -> JobConfig,
    ``train-base`` -> TrainBaseConfig; anything else is a FairLinError."""
    if isinstance(data, dict) and "kind" in data:
        kind = data["kind"]
        if kind == TRAIN_BASE:
            return TrainBaseConfig.from_dict(data)
        if kind != LINEARIZE:
            raise FairLinError(f"unknown job kind {brief(kind)}; expected one of {', '.join(KINDS)}")
        data = {k: v for k, v in data.items() if k != "kind"}
    return JobConfig.from_dict(data)


def as_config(config: AnyConfig | dict[str, Any]) -> AnyConfig:
    """``config`` itself if it is a config object, else :func:`config_from_dict` of it."""
    return config if isinstance(config, (JobConfig, TrainBaseConfig)) else config_from_dict(config)


@lru_cache(maxsize=64)
def _data_shape(dataset: str, data_root: str | None) -> tuple[int, tuple[int, ...]]:
    """(classes, input shape) of a normalised dataset dict (JSON), loaded once per process."""
    data = json.loads(dataset)
    bundle = load_dataset(data["name"], data_root=data_root, seed=data["seed"], target=data["target"],
                          group=data["group"], **data["options"])
    return bundle.num_classes, tuple(bundle.input_shape)


@lru_cache(maxsize=64)
def _check_own_data(sidecar: str, data_root: str | None, label: str) -> None:
    """FairLinError unless a checkpoint's own dataset fits its model (:func:`~fairlin_core.checkpoints.load_dataset_for`;
    ``sidecar``: JSON of the sidecar's model and dataset entries, ``label``: the checkpoint), checked once per process
    for each sidecar and data root (the data are not kept)."""
    load_dataset_for(json.loads(sidecar), data_root, label=label)


def option_defaults() -> dict[str, dict[str, Any]]:
    """The default of every option section: {"snl": {...}, "finetune": {...}, "mitigation": {...}}."""
    return {"snl": asdict(SNLConfig()), "finetune": asdict(FinetuneConfig()), "mitigation": asdict(MitigationConfig())}


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FairLinError(f"{name} must be a non-empty path, got {brief(value)}")
    return value


def _normalise_budget(budget: Any) -> int | float | str:
    """Numeric text becomes an int or float; percentages stay text ("10%"); anything else is refused."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, str)):
        raise FairLinError(f"budget {brief(budget)} has the wrong type; expected a ReLU count (500), a fraction of the "
                           f"base count (0.1) or a percentage (\"10%\")")
    if isinstance(budget, str):
        if _PERCENT.fullmatch(budget):
            return budget.strip().replace(" ", "")
        if _INTEGER.fullmatch(budget):
            return int(budget)
        try:
            return float(budget)
        except ValueError:
            raise FairLinError(f"budget {brief(budget)} is not a number; expected a ReLU count (500), a fraction of "
                               f"the base count (0.1) or a percentage (10%)") from None
    return budget


def _filled(kind: type, given: Any, name: str) -> dict[str, Any]:
    """Every field of dataclass ``kind`` with ``given`` applied, after the class's own validation."""
    if not isinstance(given, dict):
        raise FairLinError(f"{name} options must be a JSON object, got {brief(given)}")
    valid = {f.name for f in fields(kind)}
    unknown = sorted(set(given) - valid)
    if unknown:
        raise FairLinError(f"unknown {name} option(s) {clip(', '.join(unknown))}; valid: {', '.join(sorted(valid))}")
    defaults = asdict(kind())
    typed: dict[str, Any] = {}
    for key, value in given.items():
        default = defaults[key]
        if isinstance(default, (str, bool)):
            if not isinstance(value, type(default)):
                raise FairLinError(f"{name} option {key} must be {'text' if isinstance(default, str) else 'true or false'}"
                                   f", got {brief(value)}")
            typed[key] = value
            continue
        if value is None and default is None:  # an optional number (e.g. lambda_max: None = no cap)
            typed[key] = None
            continue
        if not isinstance(default, int):
            typed[key] = check_real(value, f"{name} option {key}")
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise FairLinError(f"{name} option {key} must be an integer, got {brief(value)}")
        typed[key] = int(value)
    instance = kind(**typed)
    instance.validate()
    return asdict(instance)


def _mitigation(given: Any) -> dict[str, Any] | None:
    """None for no mitigation (None or "none"); a method name or a fields dict filled with the defaults."""
    if given is None or given == NONE:
        return None
    if isinstance(given, str):
        given = {"method": given}
    return _filled(MitigationConfig, given, "mitigation")


def _normalise_dataset(dataset: Any) -> dict[str, Any] | None:
    """{"name", "options", "target", "group", "seed"} with the dataset's defaults filled in."""
    if dataset is None:
        return None
    if not isinstance(dataset, dict) or "name" not in dataset:
        raise FairLinError(f"dataset must be null or an object with a name, got {brief(dataset)}")
    unknown = sorted(set(dataset) - set(_DATASET_KEYS))
    if unknown:
        raise FairLinError(f"unknown dataset key(s) {clip(', '.join(unknown))}; valid: {', '.join(_DATASET_KEYS)}")
    spec = get_spec(dataset["name"])
    options = dataset.get("options") or {}
    if not isinstance(options, dict):
        raise FairLinError(f"dataset options must be a JSON object, got {brief(options)}")
    bad = sorted(set(options) - set(spec.defaults))
    if bad:
        raise FairLinError(f"unknown option(s) {clip(', '.join(bad))} for dataset {brief(spec.name)}; valid options: "
                           f"{', '.join(spec.defaults)}")
    target = dataset.get("target") or spec.default_target
    group = dataset.get("group") or spec.default_group
    for role, value in (("target", target), ("group", group)):
        if spec.attributes is not None and value not in spec.attributes:
            raise FairLinError(f"{role} {brief(value)} is not an attribute of {spec.name}; valid: "
                               f"{', '.join(spec.attributes)}")
    seed = check_seed(dataset.get("seed", 0), "dataset seed")
    return {"name": spec.name, "options": {**spec.defaults, **options}, "target": target, "group": group,
            "seed": int(seed)}


_digests: dict[tuple[str, int, int, int, int], str] = {}
_digests_lock = threading.Lock()


def checkpoint_digest(weights: Path) -> str:
    """sha256 (hex) over the weights file then its JSON sidecar, each read through the input guard (a regular file
    of bounded size); cached per (path, sizes, mtimes in ns)."""
    side = sidecar_path(weights)
    w, s = weights.stat(), side.stat()
    key = (str(weights), w.st_size, w.st_mtime_ns, s.st_size, s.st_mtime_ns)
    with _digests_lock:
        if key in _digests:
            return _digests[key]
    digest = hashlib.sha256()
    for path, limit, what in ((weights, MAX_WEIGHTS_BYTES, "checkpoint weights"), (side, MAX_SIDECAR_BYTES, "sidecar")):
        with open_regular(path, limit, what, CheckpointError) as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    with _digests_lock:
        _digests[key] = digest.hexdigest()
    return _digests[key]


def _config_fields(cls: type, data: Any, what: str, required: tuple[str, ...],
                   extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` checked to be a JSON object holding only ``cls``'s fields (``extra`` are named as valid too,
    already taken out) and every ``required`` one; FairLinError naming what is wrong otherwise."""
    if not isinstance(data, dict):
        raise FairLinError(f"a {what} must be a JSON object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise FairLinError(f"unknown {what} key(s) {clip(', '.join(unknown))}; valid keys: "
                           f"{', '.join(sorted(names | set(extra)))}")
    missing = [k for k in required if k not in data]
    if missing:
        raise FairLinError(f"{what} lacks {', '.join(missing)}; expected {', '.join(required)}")
    return data
