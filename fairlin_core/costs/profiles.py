"""Protocol profiles: what one ReLU and one linear layer cost under a private-inference protocol, as data.

A profile is a JSON file (the shipped ones in ``fairlin_core/costs/profiles/``, or a user's own file) with
a ``name``, a ``title``, a ``source`` (``paper``, ``measurements``, ``what``: where the numbers come from)
and one object per parameter::

    {"value": 1184.0, "derivation": "how the value follows from the source"}
    {"value": 1000.0, "assumption": true, "reason": "why no source gives it"}

Parameters (every one required, values finite and >= 0, rates the estimate divides by (``DIVISORS``) > 0; bytes
and seconds per unit):

- ``relu``: ``online_bytes``, ``offline_bytes``, ``online_seconds``, ``offline_seconds`` (per ReLU)
- ``linear``: ``online_bytes_per_input``, ``offline_bytes_per_input``, ``offline_bytes_per_output``
  (per input / output element of a conv or fully connected layer), ``online_seconds_per_mac``,
  ``offline_seconds_per_mac``
- ``model_input``: ``online_bytes_per_element`` (sending the client's input, where the protocol does so
  apart from the first linear layer)
- ``fixed``: ``online_bytes``, ``offline_bytes``, ``offline_seconds`` (once per inference: keys, base OTs,
  the prediction)
- ``network``: ``bandwidth_mbps`` (megabits per second, both directions)

A bad profile is a :class:`~fairlin_core.errors.FairLinError` naming the field that is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FairLinError, brief
from ..inputs import read_json
from ..limits import NON_NEGATIVE, POSITIVE, check_real

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "delphi"
MAX_PROFILE_BYTES = 1024 * 1024  # a profile file is a few kB
PARAMETERS: dict[str, tuple[str, ...]] = {
    "relu": ("online_bytes", "offline_bytes", "online_seconds", "offline_seconds"),
    "linear": ("online_bytes_per_input", "offline_bytes_per_input", "offline_bytes_per_output",
               "online_seconds_per_mac", "offline_seconds_per_mac"),
    "model_input": ("online_bytes_per_element",),
    "fixed": ("online_bytes", "offline_bytes", "offline_seconds"),
    "network": ("bandwidth_mbps",),
}
SOURCE_FIELDS = ("paper", "measurements", "what")
DIVISORS = ("network.bandwidth_mbps",)  # rates the estimate divides by: > 0 (0 would be a division by zero)


@dataclass(frozen=True)
class Profile:
    """A validated profile: ``values[section][parameter]`` (floats), ``assumptions`` (the "section.parameter"
    names marked as assumptions, with their reasons), the raw ``data`` and where it was read from."""

    name: str
    title: str
    source: dict[str, str]
    values: dict[str, dict[str, float]]
    assumptions: dict[str, str]
    data: dict[str, Any]
    path: Path | None = None

    def __getitem__(self, section: str) -> dict[str, float]:
        return self.values[section]

    def describe(self) -> dict[str, Any]:
        """A JSON-ready summary: name, title, source, assumptions and the values."""
        return {"name": self.name, "title": self.title, "source": self.source, "assumptions": self.assumptions,
                "values": self.values}


def list_profiles() -> list[str]:
    """Names of the shipped profiles (the files in ``fairlin_core/costs/profiles/``), sorted."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.json"))


def load_profile(profile: str | Path | Profile = DEFAULT_PROFILE) -> Profile:
    """A shipped profile by name, or a profile file by path (anything ending in .json or naming a file);
    FairLinError naming what is wrong."""
    if isinstance(profile, Profile):
        return profile
    text = str(profile)
    path = Path(text)
    if text in list_profiles():
        path = PROFILE_DIR / f"{text}.json"
    elif not (text.endswith(".json") or path.is_file()):
        raise FairLinError(f"unknown cost profile {brief(text)}; expected one of {', '.join(list_profiles())} or the "
                           f"path of a profile JSON file")
    data = read_json(path, MAX_PROFILE_BYTES, "cost profile", "a profile JSON object (see fairlin_core.costs.profiles)")
    return validate_profile(data, path)


def validate_profile(data: Any, path: Path | None = None) -> Profile:
    """``data`` (a parsed profile file) checked field by field; the first wrong field is named in the error."""
    where = f"cost profile {path}" if path is not None else "cost profile"
    if not isinstance(data, dict):
        raise FairLinError(f"{where}: expected a JSON object with name, title, source and the parameter sections "
                           f"{', '.join(PARAMETERS)}")
    for field in ("name", "title"):
        if not isinstance(data.get(field), str) or not data[field].strip():
            raise FairLinError(f"{where}: field {field!r} must be a non-empty string")
    source = data.get("source")
    if not isinstance(source, dict):
        raise FairLinError(f"{where}: field 'source' must be an object with {', '.join(SOURCE_FIELDS)}")
    for field in SOURCE_FIELDS:
        if not isinstance(source.get(field), str) or not source[field].strip():
            raise FairLinError(f"{where}: field 'source.{field}' must be a non-empty string (where the numbers "
                               f"come from)")
    values: dict[str, dict[str, float]] = {}
    assumptions: dict[str, str] = {}
    for section, names in PARAMETERS.items():
        block = data.get(section)
        if not isinstance(block, dict):
            raise FairLinError(f"{where}: field {section!r} must be an object with {', '.join(names)}")
        values[section] = {}
        for name in names:
            field = f"{section}.{name}"
            values[section][name] = _parameter(block.get(name), field, where)
            if block[name].get("assumption"):
                assumptions[field] = block[name]["reason"]
    return Profile(data["name"], data["title"], {k: source[k] for k in SOURCE_FIELDS}, values, assumptions, data,
                   path)


def _parameter(entry: Any, field: str, where: str) -> float:
    if not isinstance(entry, dict):
        raise FairLinError(f"{where}: field {field!r} must be an object {{\"value\": number, \"derivation\": "
                           f"text}} (or \"assumption\": true with a \"reason\")")
    value = check_real(entry.get("value"), f"{where}: field '{field}.value'",
                       POSITIVE if field in DIVISORS else NON_NEGATIVE)
    assumption = entry.get("assumption", False)
    if not isinstance(assumption, bool):
        raise FairLinError(f"{where}: field '{field}.assumption' must be true or false, got {brief(assumption)}")
    text_field = "reason" if assumption else "derivation"
    if not isinstance(entry.get(text_field), str) or not entry[text_field].strip():
        raise FairLinError(f"{where}: field '{field}.{text_field}' must be a non-empty string ("
                           + ("why no source gives this value" if assumption else "how the value follows from "
                              "the source; mark it \"assumption\": true with a \"reason\" if none does") + ")")
    return value
