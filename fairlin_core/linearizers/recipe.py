"""How one model is linearized, as one typed value: :class:`LinearizeRecipe`.

A recipe is everything a user chooses about one linearization run except which base checkpoint and which data:
the method, the ReLU budget, the seed, SNL's schedule, the finetune (with its validation selection rule), the
mitigation by name with its options (None = plain KD finetune), the precision and the audit diagnostics to run
on the result. The CLI, the Linearize form, ``fl.linearize``, ``fl.compare`` and the audit grid each build
recipes; a job config is a recipe plus a checkpoint, a dataset and a data root; results store the recipe of
every run. Defaults live only in the fields of the recipe and of its parts (:class:`SNLConfig`,
:class:`~fairlin_core.finetune.FinetuneConfig`, :class:`~fairlin_core.finetune.MitigationConfig`).

JSON form (``to_dict`` / ``from_dict``)::

    {"method": "snl", "budget": "10%", "seed": 0, "snl": {...SNLConfig}, "finetune": {...FinetuneConfig},
     "mitigation": null | {"method": "groupdro", ...MitigationConfig}, "precision": "fp32", "diagnostics": []}

``from_dict`` also reads the sparse forms stored before recipes existed: ``snl`` / ``finetune`` with only the
fields that differ from the defaults, ``mitigation`` as a method name, ``"none"``, or a dict without ``method``
(the lagrangian). :meth:`canonical` is what a run's hash covers.
"""

from __future__ import annotations

import numbers
import re
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from ..errors import FairLinError, brief, check_seed, clip
from ..finetune import FinetuneConfig, MitigationConfig, mitigation_names
from ..limits import check_real
from ..runtime import PRECISIONS
from .base import get_linearizer
from .options import LinearizeOptions, SNLConfig

FP32 = "fp32"
NO_MITIGATION = "none"
_PERCENT = re.compile(r"\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*%\s*")
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")
_KEYS = ("method", "budget", "seed", "snl", "finetune", "mitigation", "precision", "diagnostics")


@dataclass(frozen=True)
class LinearizeRecipe:
    """One linearization run, field by field:

    method: a registered linearizer (``snl``, ``deepreduce``, ``random``, ...).
    budget: ReLUs to keep: an int count, a float fraction in (0, 1] or text ("500", "0.1", "10%"); resolved
    against the base model's count when the run starts.
    seed: seed of SNL, random placement and finetuning.
    snl: SNL's schedule (read by the ``snl`` method only, validated for every method).
    finetune: the masks-frozen KD finetune every method ends with, with its selection rule (``select``).
    mitigation: None = plain KD finetune; else the fairness mitigation of the finetune (method by name + options).
    precision: ``fp32`` (reproducible) or ``bf16`` (autocast of the training forward passes, CUDA only).
    diagnostics: audit diagnostics run on the finetuned model (names are checked by the audit layer that runs them).
    """

    method: str = "snl"
    budget: int | float | str = "10%"
    seed: int = 0
    snl: SNLConfig = field(default_factory=SNLConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    mitigation: MitigationConfig | None = None
    precision: str = FP32
    diagnostics: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Any) -> LinearizeRecipe:
        """A recipe from its JSON form (sparse option sections and the older mitigation spellings accepted, see the
        module docstring); unknown keys, wrong types or invalid values are a FairLinError naming the key."""
        if not isinstance(data, dict):
            raise FairLinError(f"a recipe must be a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - set(_KEYS))
        if unknown:
            raise FairLinError(f"unknown recipe key(s) {clip(', '.join(map(str, unknown)))}; valid keys: {', '.join(_KEYS)}")
        given = dict(data)
        if "snl" in given:
            given["snl"] = _section(SNLConfig, given["snl"], "snl")
        if "finetune" in given:
            given["finetune"] = _section(FinetuneConfig, given["finetune"], "finetune")
        if "mitigation" in given:
            given["mitigation"] = _mitigation(given["mitigation"])
        if "diagnostics" in given:
            given["diagnostics"] = _names(given["diagnostics"])
        return cls(**given).validate()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (every option filled in); :meth:`from_dict` of it is an equal recipe."""
        return {"method": self.method, "budget": self.budget, "seed": self.seed, "snl": asdict(self.snl),
                "finetune": asdict(self.finetune),
                "mitigation": None if self.mitigation is None else asdict(self.mitigation),
                "precision": self.precision, "diagnostics": list(self.diagnostics)}

    def validate(self) -> LinearizeRecipe:
        """The normalised recipe (numeric budget text as a number, percentages as "10%", diagnostics a tuple);
        FairLinError naming the first invalid field. The method must be registered; the budget is checked against a
        model's ReLU count only when the run starts (:func:`~fairlin_core.linearizers.resolve_budget`)."""
        get_linearizer(self.method)
        seed = check_seed(self.seed)
        if self.precision not in PRECISIONS:
            raise FairLinError(f"precision must be one of {', '.join(PRECISIONS)}, got {brief(self.precision)}")
        for part, kind in ((self.snl, SNLConfig), (self.finetune, FinetuneConfig)):
            if not isinstance(part, kind):
                raise FairLinError(f"recipe {kind.__name__} expected, got {brief(part)}")
        if self.mitigation is not None and not isinstance(self.mitigation, MitigationConfig):
            raise FairLinError(f"recipe mitigation must be None or a MitigationConfig, got {brief(self.mitigation)}")
        # each part re-read from its fields: numbers typed as their defaults (mu=1 -> 1.0), so one value, one hash
        return replace(self, budget=normalise_budget(self.budget), seed=int(seed),
                       snl=_section(SNLConfig, asdict(self.snl), "snl"),
                       finetune=_section(FinetuneConfig, asdict(self.finetune), "finetune"),
                       mitigation=None if self.mitigation is None else _section(MitigationConfig,
                                                                                asdict(self.mitigation), "mitigation"),
                       diagnostics=_names(self.diagnostics))

    def canonical(self) -> dict[str, Any]:
        """What a run's hash covers: the validated :meth:`to_dict` with a percentage budget as its fraction and
        ``precision`` left out when fp32 (so every fp32 run keeps the hash it had before precision existed)."""
        data = self.validate().to_dict()
        if isinstance(data["budget"], str):
            data["budget"] = float(data["budget"].strip()[:-1]) / 100.0
        if data["precision"] == FP32:
            del data["precision"]
        return data

    def options(self, placement: LinearizeOptions | None = None) -> LinearizeOptions:
        """The options the linearizers and the finetune read: the recipe's SNL schedule, finetune and precision, and
        the placement choices no recipe holds (``exact``, ``deepreduce``, ``stem_strides``) from ``placement``."""
        return replace(placement or LinearizeOptions(), snl=self.snl, finetune=self.finetune, precision=self.precision)

    @property
    def mitigation_name(self) -> str:
        """``none`` or the mitigation method's name (``lagrangian``, ``reweight``, ``groupdro``, ...)."""
        return NO_MITIGATION if self.mitigation is None else self.mitigation.method

    def protocol(self) -> LinearizeRecipe:
        """The training protocol this run shares with the other points of its series: the recipe with method,
        budget, seed and diagnostics at their defaults, and SNL's schedule too unless the method is snl (other
        methods never read it). Runs whose protocols are equal are averaged into one series."""
        neutral = LinearizeRecipe()
        return replace(self.validate(), method=neutral.method, budget=neutral.budget, seed=neutral.seed,
                       diagnostics=(), snl=self.snl if self.method == "snl" else neutral.snl)

    def with_epochs(self, snl_epochs: int | None = None, finetune_epochs: int | None = None) -> LinearizeRecipe:
        """A copy with SNL's maximum epochs and/or the finetune's epochs replaced (None keeps them)."""
        options = self.options().with_epochs(snl_epochs, finetune_epochs)
        return replace(self, snl=options.snl, finetune=options.finetune)

    def describe(self) -> str:
        """How the run was trained, in words: "finetune 20 ep · SNL 100 ep · lagrangian mu 0.01": the finetune's
        epochs, SNL's (snl runs only), the mitigation (:func:`describe_mitigation`; :data:`PLAIN_FINETUNE`
        without) and the precision when not fp32; every other option that differs from its default is named
        after its part ("finetune 10 ep lr 0.01"), so two protocols never read alike."""
        parts = [f"finetune {self.finetune.epochs} ep{_changed(self.finetune, FinetuneConfig(), ('epochs',))}"]
        if self.method == "snl":
            parts.append(f"SNL {self.snl.epochs} ep{_changed(self.snl, SNLConfig(), ('epochs',))}")
        parts.append(PLAIN_FINETUNE if self.mitigation is None else describe_mitigation(self.mitigation))
        parts += [] if self.precision == FP32 else [self.precision]
        return " · ".join(parts)


PLAIN_FINETUNE = "plain finetune"  # how a recipe without mitigation reads
_NAMED_SETTINGS = {"lagrangian": ("mu",), "groupdro": ("eta",)}  # the setting a method's description always names


def describe_mitigation(mitigation: MitigationConfig | None) -> str:
    """A mitigation in words: "none", "reweight", "lagrangian mu 0.01", "groupdro eta 0.01", plus every setting
    that differs from its default ("lagrangian mu 0.01 normalize tolerance 0.1 lambda_max 0.5")."""
    if mitigation is None:
        return NO_MITIGATION
    named = _NAMED_SETTINGS.get(mitigation.method, ())
    return mitigation.method + _changed(mitigation, MitigationConfig(method=mitigation.method), ("method",), named)


def _changed(options: Any, defaults: Any, skip: tuple[str, ...], named: tuple[str, ...] = ()) -> str:
    """" name value" for every field of ``options`` in ``named`` or differing from ``defaults`` (a true flag is its
    name alone, a false one or None "no name"), in field order; "" when none."""
    words = []
    for part in fields(options):
        value = getattr(options, part.name)
        if part.name in skip or (part.name not in named and value == getattr(defaults, part.name)):
            continue
        if value is True:
            words.append(part.name)
        elif value is False or value is None:
            words.append(f"no {part.name}")
        else:
            words.append(f"{part.name} {value:g}" if isinstance(value, (int, float)) else f"{part.name} {value}")
    return "".join(f" {word}" for word in words)


def normalise_budget(budget: Any) -> int | float | str:
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


def _names(diagnostics: Any) -> tuple[str, ...]:
    if isinstance(diagnostics, str) or not isinstance(diagnostics, (list, tuple)) \
            or not all(isinstance(name, str) for name in diagnostics):
        raise FairLinError(f"recipe diagnostics must be a list of names, got {brief(diagnostics)}")
    return tuple(diagnostics)


def _section(kind: type, given: Any, name: str) -> Any:
    """A ``kind`` (SNLConfig, FinetuneConfig, MitigationConfig) from a JSON object holding some of its fields (the
    others keep their defaults), each checked against the type of its default; FairLinError naming the option."""
    if isinstance(given, kind):
        return given
    if not isinstance(given, dict):
        raise FairLinError(f"{name} options must be a JSON object, got {brief(given)}")
    valid = {f.name for f in fields(kind)}
    unknown = sorted(set(given) - valid)
    if unknown:
        raise FairLinError(f"unknown {name} option(s) {clip(', '.join(map(str, unknown)))}; valid: "
                           f"{', '.join(sorted(valid))}")
    defaults = asdict(kind())
    typed: dict[str, Any] = {}
    for key, value in given.items():
        default = defaults[key]
        if isinstance(default, (str, bool)):
            if not isinstance(value, type(default)):
                raise FairLinError(f"{name} option {key} must be {'text' if isinstance(default, str) else 'true or false'}"
                                   f", got {brief(value)}")
            typed[key] = value
        elif value is None and default is None:  # an optional number (e.g. lambda_max: None = no cap)
            typed[key] = None
        elif not isinstance(default, int):
            typed[key] = check_real(value, f"{name} option {key}")
        elif isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise FairLinError(f"{name} option {key} must be an integer, got {brief(value)}")
        else:
            typed[key] = int(value)
    instance = kind(**typed)
    instance.validate()
    return instance


def _mitigation(given: Any) -> MitigationConfig | None:
    """None for no mitigation (None or "none"); a method name or a fields dict (without ``method``: the lagrangian,
    as stored before other methods existed) filled with the defaults."""
    if given is None or given == NO_MITIGATION:
        return None
    if isinstance(given, str):
        if given not in mitigation_names():
            raise FairLinError(f"unknown mitigation {brief(given)}; expected one of {', '.join(mitigation_names())}")
        given = {"method": given}
    return _section(MitigationConfig, given, "mitigation")
