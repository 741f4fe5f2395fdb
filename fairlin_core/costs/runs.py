"""Cost estimates of many linearized runs of one base architecture, from what audit results keep: each
run's ReLU count and its linearizer's configuration (DeepReDuce's ``stem_stride`` changes the architecture,
hence the linear layers' shapes and MACs).

Results keep one ReLU count per run, not per site. Every profile prices all ReLUs alike, so the total
count fixes the ReLU cost exactly; only a per-layer breakdown would need the masks.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from ..models import ModelSpec
from .pricing import estimate
from .profiles import DEFAULT_PROFILE, Profile, load_profile
from .shapes import spec_layer_table

RUN_COST_COLUMNS = ["run_id", "profile", "relu_count", "macs", "online_mb", "offline_mb", "online_latency_s",
                    "offline_latency_s", "total_latency_s"]
ARCHITECTURE_OPTIONS = ("stem_stride",)  # linearizer configuration keys that rebuild the architecture


def run_costs(spec: ModelSpec, runs: pd.DataFrame, profile: str | Path | Profile = DEFAULT_PROFILE) -> pd.DataFrame:
    """One row per run of ``runs`` (run_id, relu_count, configuration as JSON text) of a model of ``spec``:
    the columns of ``RUN_COST_COLUMNS`` (MB, seconds; see :mod:`fairlin_core.costs.pricing`)."""
    profile = load_profile(profile)
    input_elements = math.prod(spec.input_shape)
    rows = []
    for run in runs.itertuples(index=False):
        configuration = json.loads(run.configuration) if isinstance(run.configuration, str) and run.configuration \
            else {}
        options = {k: int(configuration[k]) for k in ARCHITECTURE_OPTIONS if k in configuration}
        result = estimate(spec_layer_table(spec, **options), input_elements, profile, relu_count=int(run.relu_count))
        rows.append({"run_id": run.run_id, "profile": profile.name,
                     **{k: result.totals[k] for k in RUN_COST_COLUMNS[2:]}})
    return pd.DataFrame(rows, columns=RUN_COST_COLUMNS)


def base_cost(spec: ModelSpec, profile: str | Path | Profile = DEFAULT_PROFILE) -> dict[str, float]:
    """Totals of the base model of ``spec`` with every ReLU on."""
    return estimate(spec_layer_table(spec), math.prod(spec.input_shape), profile).totals


def pareto_front(cost: pd.Series, value: pd.Series) -> list[bool]:
    """Whether each point is on the front of low ``cost`` and high ``value`` (e.g. online latency in seconds and
    worst-group accuracy): no other point has cost <= and value >= with one of them strict (NaN values are
    never on the front)."""
    points = list(zip(cost, value))
    return [pd.notna(v) and not any(pd.notna(v2) and c2 <= c and v2 >= v and (c2 < c or v2 > v) for c2, v2 in points)
            for c, v in points]
