"""The cost of one private inference under a protocol profile: per layer and in total.

Per ReLU switched on: the profile's ``relu`` costs (a linearized entry costs nothing: it is a local identity
on shares). Per conv / fully connected layer: ``linear.online_bytes_per_input`` x input elements,
``offline_bytes_per_input`` x input + ``offline_bytes_per_output`` x output elements, and seconds per MAC.
Once per inference: ``fixed`` costs and ``model_input.online_bytes_per_element`` x the input's elements.
Latency of a phase = its compute seconds + its bytes x 8 / (``network.bandwidth_mbps`` x 1e6). MB = 1e6 bytes.

    estimate = fl.cost("checkpoints/digits_resnet18.safetensors", profile="delphi")
    estimate.layers       # one row per layer (kind conv / fc / relu, and "fixed")
    estimate.totals       # relu_count, relu_sites, macs, online_mb, offline_mb, online_latency_s, ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from ..checkpoints import Checkpoint, load_checkpoint
from ..errors import FairLinError
from .profiles import DEFAULT_PROFILE, Profile, load_profile
from .shapes import layer_table

COST_COLUMNS = ["online_mb", "offline_mb", "online_compute_s", "offline_compute_s", "online_latency_s",
                "offline_latency_s"]
TOTAL_KEYS = ["relu_count", "relu_sites", "macs", *COST_COLUMNS, "total_latency_s"]


@dataclass(frozen=True)
class CostEstimate:
    """``layers``: the layer table (:func:`~fairlin_core.costs.shapes.layer_table`) with the cost columns
    (MB, seconds) per row, plus one ``fixed`` row for the per-inference costs; ``totals``: their sums
    (relu_count, relu_sites, macs, online_mb, offline_mb, online/offline compute and latency seconds,
    total_latency_s = online + offline latency); ``profile``: the profile used."""

    layers: pd.DataFrame
    totals: dict[str, float]
    profile: Profile

    def __repr__(self) -> str:
        t = self.totals
        return (f"CostEstimate({self.profile.name}: {t['relu_count']:,} ReLUs, {t['macs']:,} MACs; online "
                f"{t['online_mb']:.3g} MB {t['online_latency_s']:.3g} s, offline {t['offline_mb']:.3g} MB "
                f"{t['offline_latency_s']:.3g} s)")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: profile (name, title, source, assumptions, values), totals, layers (records)."""
        return {"profile": self.profile.describe(), "totals": self.totals,
                "layers": self.layers.to_dict(orient="records")}


def estimate(layers: pd.DataFrame, input_elements: int, profile: str | Path | Profile = DEFAULT_PROFILE,
             relu_count: int | None = None) -> CostEstimate:
    """The cost of the model described by ``layers`` (a layer table) whose input has ``input_elements`` per
    sample. ``relu_count``: price this many ReLUs instead of the sites' own counts (spread over the sites in
    proportion to their size: the total is exact, since every profile prices all ReLUs alike; the per-site
    split is then an approximation)."""
    profile = load_profile(profile)
    table = layers.copy()
    relu_rows = table["kind"] == "relu"
    if relu_count is not None:
        sites = table.loc[relu_rows, "relu_sites"]
        if relu_count < 0 or relu_count > sites.sum():
            raise FairLinError(f"relu_count {relu_count} is outside 0..{int(sites.sum())} (the model's ReLU sites)")
        table.loc[relu_rows, "relus"] = _spread(relu_count, sites.tolist())
    relu, linear, fixed = profile["relu"], profile["linear"], profile["fixed"]
    linear_rows = ~relu_rows
    online_bytes = (relu_rows * table["relus"] * relu["online_bytes"]
                    + linear_rows * table["input_elements"] * linear["online_bytes_per_input"])
    offline_bytes = (relu_rows * table["relus"] * relu["offline_bytes"]
                     + linear_rows * (table["input_elements"] * linear["offline_bytes_per_input"]
                                      + table["output_elements"] * linear["offline_bytes_per_output"]))
    table["online_mb"] = online_bytes / 1e6
    table["offline_mb"] = offline_bytes / 1e6
    table["online_compute_s"] = (relu_rows * table["relus"] * relu["online_seconds"]
                                 + table["macs"] * linear["online_seconds_per_mac"])
    table["offline_compute_s"] = (relu_rows * table["relus"] * relu["offline_seconds"]
                                  + table["macs"] * linear["offline_seconds_per_mac"])
    once = {"layer": "(per inference)", "kind": "fixed", "input_elements": input_elements, "output_elements": 0,
            "macs": 0, "relu_sites": 0, "relus": 0,
            "online_mb": (fixed["online_bytes"] + input_elements * profile["model_input"]["online_bytes_per_element"])
            / 1e6,
            "offline_mb": fixed["offline_bytes"] / 1e6, "online_compute_s": 0.0,
            "offline_compute_s": fixed["offline_seconds"]}
    table = pd.concat([table, pd.DataFrame([once])], ignore_index=True)
    seconds_per_mb = 8.0 / profile["network"]["bandwidth_mbps"]  # 1 MB = 8 Mbit
    for phase in ("online", "offline"):
        table[f"{phase}_latency_s"] = table[f"{phase}_compute_s"] + table[f"{phase}_mb"] * seconds_per_mb
    totals: dict[str, float] = {"relu_count": int(table["relus"].sum()), "relu_sites": int(table["relu_sites"].sum()),
                                "macs": int(table["macs"].sum())}
    totals.update({column: float(table[column].sum()) for column in COST_COLUMNS})
    totals["total_latency_s"] = totals["online_latency_s"] + totals["offline_latency_s"]
    return CostEstimate(table, totals, profile)


def _spread(total: int, sizes: list[int]) -> list[int]:
    """``total`` split over bins of ``sizes`` in proportion to their size (largest remainders), summing exactly."""
    whole = sum(sizes)
    if whole == 0:
        return [0] * len(sizes)
    shares = [total * size / whole for size in sizes]
    counts = [math.floor(share) for share in shares]
    order = sorted(range(len(sizes)), key=lambda i: counts[i] - shares[i])
    for i in order[:total - sum(counts)]:
        counts[i] += 1
    return counts


def cost(model: nn.Module | Checkpoint | str | Path, profile: str | Path | Profile = DEFAULT_PROFILE, *,
         input_shape: tuple[int, ...] | None = None) -> CostEstimate:
    """``fl.cost``: the estimated cost of one private inference of ``model`` (a checkpoint path, a
    :class:`~fairlin_core.checkpoints.Checkpoint`, or an instrumented ``nn.Module`` with ``input_shape``,
    (C, H, W) or (features,)) under ``profile`` (a shipped profile's name or a profile file's path), with
    its masks as they are: every ReLU switched on is priced, linearized ones are free."""
    if isinstance(model, (str, Path)):
        model = load_checkpoint(model)
    if isinstance(model, Checkpoint):
        input_shape = tuple(model.spec.input_shape)
        model = model.model
    if input_shape is None:
        raise FairLinError("fl.cost of a bare nn.Module needs input_shape=(C, H, W) or (features,); a checkpoint "
                           "carries its own")
    profile = load_profile(profile)
    return estimate(layer_table(model, input_shape), math.prod(input_shape), profile)
