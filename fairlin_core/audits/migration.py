"""Audit results of any age in today's shape: every run's configuration holds its
:class:`~fairlin_core.linearizers.LinearizeRecipe`, and the runs table's ``mitigation`` column the recipe's
mitigation name (``none``, ``lagrangian``, ``reweight``, ``groupdro``).

Today's shape, per run: ``configs[run_id] = {**recipe.to_dict(), "checkpoint": ..., ...}`` (the other keys,
e.g. ``dataset``, ``data_root``, ``shared_masks``, are kept as they are). Older results differ in three ways,
all read here:

- the runs table said ``mitigation`` "off"/"on" with the lagrangian's ``mu`` beside it;
- configs were sparse (only the SNL / finetune / mitigation options that differ from their defaults; a
  mitigation without ``method`` is the lagrangian), or the flat job config of a run store;
- a run had no config at all: then its recipe is the grid manifest's (``meta["grid"]``: ``snl_epochs``,
  ``finetune_epochs``, ``mu``, ``mitigation``, the lagrangian when absent) with the run's method, budget
  and seed, mitigated when the runs table says "on" (its ``mu`` where given); the diagnostics it ran are
  not known there (none are recorded).

Migrating is idempotent: results in today's shape come back equal.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import pandas as pd

from ..errors import FairLinError
from ..linearizers.recipe import NO_MITIGATION, LinearizeRecipe

RECIPE_KEYS = tuple(f.name for f in fields(LinearizeRecipe))
OLD_PLAIN = ("off", NO_MITIGATION)  # the runs table's unmitigated spellings, then and now
OLD_MITIGATED = "on"


def migrate(runs: pd.DataFrame, configs: dict[str, Any], meta: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """(runs, configs) in today's shape: one config per run of ``runs`` (configs of other runs are dropped), its
    recipe part complete, and ``runs["mitigation"]`` the recipe's mitigation name. FairLinError naming the run
    whose config is no valid recipe."""
    migrated, names = {}, []
    for row in runs.to_dict("records"):
        run_id = str(row["run_id"])
        try:
            recipe, extras = split_config(configs.get(run_id)) if configs.get(run_id) else _from_grid(row, meta)
        except FairLinError as error:
            raise FairLinError(f"run {run_id} of these results: {error}") from None
        migrated[run_id] = {**extras, **recipe.to_dict()}
        names.append(recipe.mitigation_name)
    return runs.assign(mitigation=pd.Series(names, index=runs.index, dtype=str)), migrated


def split_config(config: dict[str, Any]) -> tuple[LinearizeRecipe, dict[str, Any]]:
    """A stored run config (a results config or a run store's job config) as (its recipe, the other keys)."""
    recipe = LinearizeRecipe.from_dict({k: v for k, v in config.items() if k in RECIPE_KEYS})
    return recipe, {k: v for k, v in config.items() if k not in RECIPE_KEYS}


def _from_grid(row: dict[str, Any], meta: dict[str, Any]) -> tuple[LinearizeRecipe, dict[str, Any]]:
    """The recipe of a run without a config: the grid manifest's, see the module docstring."""
    grid = meta.get("grid") or {}
    said = row.get("mitigation")
    mitigation = None
    if isinstance(said, str) and said not in OLD_PLAIN:
        mitigation = {"method": grid.get("mitigation", "lagrangian") if said == OLD_MITIGATED else said}
        mu = row.get("mu") if pd.notna(row.get("mu", float("nan"))) else grid.get("mu")
        if mu is not None and mitigation["method"] == "lagrangian":
            mitigation["mu"] = float(mu)
    recipe = LinearizeRecipe.from_dict({
        "method": row["method"], "budget": row["budget"], "seed": int(row["seed"]), "mitigation": mitigation,
        "snl": {"epochs": grid["snl_epochs"]} if "snl_epochs" in grid else {},
        "finetune": {"epochs": grid["finetune_epochs"]} if "finetune_epochs" in grid else {}})
    return recipe, ({"checkpoint": meta["checkpoint"]} if meta.get("checkpoint") else {})
