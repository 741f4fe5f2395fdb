"""The series of a set of runs: which runs are trained alike, so that their points may be averaged and set side
by side across methods and budgets.

A run's training protocol is its recipe's :meth:`~fairlin_core.linearizers.LinearizeRecipe.protocol` (everything
but method, budget, seed and diagnostics; SNL's schedule only for snl runs). One series gathers the runs of
one protocol, and two kinds of runs join it across that rule, as the audit's views compare them:

- runs of other methods than snl, whatever SNL schedule their recipe names (they never read it), so SNL's
  runs are compared with random and DeepReDuce runs of the same finetune;
- unmitigated runs of a mitigated protocol that are otherwise alike (the "twins" trained without the
  mitigation), so a series holds the mitigated runs and the plain ones to compare them with.

:func:`series` lists the largest such sets: every run is in at least one, a set inside another is left out, and
the plain runs join every mitigated protocol they are twins of.
"""

from __future__ import annotations

from dataclasses import replace

from ..linearizers.recipe import LinearizeRecipe

SNL = "snl"


def joins(recipe: LinearizeRecipe, protocol: LinearizeRecipe) -> bool:
    """Whether a run of ``recipe`` belongs to the series of ``protocol`` (a :meth:`LinearizeRecipe.protocol`
    value, or a recipe whose protocol is taken)."""
    return _joins(recipe.protocol(), recipe.method == SNL, protocol.protocol())


def _joins(own: LinearizeRecipe, snl: bool, protocol: LinearizeRecipe) -> bool:
    if not snl:
        own = replace(own, snl=protocol.snl)
    if own.mitigation is None:
        own = replace(own, mitigation=protocol.mitigation)
    return own == protocol


def series(recipes: dict[str, LinearizeRecipe]) -> list[tuple[LinearizeRecipe, list[str]]]:
    """The series of the runs (run_id -> recipe): (protocol, run ids in the given order) per series, ordered by
    finetune epochs, SNL epochs and description. The protocol is the recipe its runs share, with method
    ``snl`` where snl runs are in the series (else the method of its first run), budget, seed and diagnostics
    at their defaults, so that :meth:`~LinearizeRecipe.describe` names SNL's schedule exactly when it
    applies."""
    kinds: dict[tuple[LinearizeRecipe, bool], list[str]] = {}  # runs alike for membership: one check per kind
    for run_id, recipe in recipes.items():
        kinds.setdefault((recipe.protocol(), recipe.method == SNL), []).append(run_id)
    order = {run_id: i for i, run_id in enumerate(recipes)}
    found: dict[frozenset[str], LinearizeRecipe] = {}
    for protocol in dict.fromkeys(own for own, _ in kinds):
        members = frozenset(run_id for (own, snl), ids in kinds.items() if _joins(own, snl, protocol)
                            for run_id in ids)
        first = min(members, key=order.__getitem__)
        method = SNL if any(recipes[r].method == SNL for r in members) else recipes[first].method
        found.setdefault(members, replace(protocol, method=method))
    largest = [(protocol, members) for members, protocol in found.items()
               if not any(members < other for other in found)]
    largest.sort(key=lambda item: (item[0].finetune.epochs, item[0].snl.epochs if item[0].method == SNL else -1,
                                   item[0].describe()))
    return [(protocol, sorted(members, key=order.__getitem__)) for protocol, members in largest]
