"""Model selection on the validation split: which finetune epoch to keep.

Rules (``FinetuneConfig.select``), over the epochs' validation rows (epoch 0 = the starting point):

``overall``      the best overall validation accuracy.
``worst-group``  the best worst-group validation accuracy (ties: better overall accuracy).
``constrained``  the best overall accuracy among the epochs whose worst-group validation accuracy is
                 within ``tolerance`` (a fraction, 0.02 = 2 points) of the best worst-group accuracy seen.

``auto`` (the default) is ``constrained`` for a mitigated finetune and ``overall`` for a plain one: the
plain finetune stays the standard practice the audit measures (SNL's reference keeps the best overall
epoch), while a mitigation is run for its worst group, and ``constrained`` never keeps a lower overall
accuracy than ``worst-group`` (the worst-group pick is among its candidates). On the issue-17 evidence
(README) worst-group/constrained selection lifted the toy minority under every mitigation at <1 point
of overall accuracy and changed nothing on digits with SNL masks.

Remaining ties go to the earliest epoch. :func:`select_epoch` applies a rule to a whole history;
:class:`Selector` applies every rule online during one finetune and keeps only the states a rule can
still pick (for ``constrained``: the epochs within tolerance that no other such epoch beats on both
accuracies), so one run yields the model of every rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..errors import FairLinError, brief

SELECTIONS = ("overall", "worst-group", "constrained")
OVERALL, WORST, CONSTRAINED = SELECTIONS
AUTO = "auto"
DEFAULT_SELECT = AUTO


def resolve_selection(rule: str, mitigated: bool) -> str:
    """The rule ``rule`` names; ``auto`` -> constrained when ``mitigated``, else overall."""
    if rule == AUTO:
        return CONSTRAINED if mitigated else OVERALL
    return check_selection(rule)
_EPS = 1e-12


def check_selection(rule: str, allow_auto: bool = False) -> str:
    if rule not in SELECTIONS and not (allow_auto and rule == AUTO):
        raise FairLinError(f"unknown selection {brief(rule)}; expected one of {', '.join(SELECTIONS)}"
                           f"{' or auto' if allow_auto else ''}")
    return rule


def _overall(row: dict[str, Any]) -> float:
    return float(row["val_accuracy"])


def _worst(row: dict[str, Any]) -> float:
    return float(row["val_worst_group_accuracy"])


def select_epoch(rows: Sequence[dict[str, Any]], rule: str, tolerance: float = 0.0) -> int:
    """The ``epoch`` of the row ``rule`` keeps; rows need epoch, val_accuracy, val_worst_group_accuracy."""
    check_selection(rule)
    if not rows:
        raise FairLinError("no validation rows to select from")
    if rule == OVERALL:
        key = _overall
        pool = list(rows)
    elif rule == WORST:
        def key(row):
            return (_worst(row), _overall(row))
        pool = list(rows)
    else:
        best_worst = max(_worst(r) for r in rows)
        pool = [r for r in rows if _worst(r) >= best_worst - tolerance - _EPS]
        key = _overall
    best = pool[0]
    for row in pool[1:]:
        if key(row) > key(best):
            best = row
    return int(best["epoch"])


class Selector:
    """Every rule applied online: ``offer(row, snapshot)`` per epoch in order, then ``chosen(rule)``.

    snapshot: called at most once per epoch, only when some rule may keep that epoch; its value (e.g.
    a copy of the model's state dict) is what ``chosen`` returns with the epoch.
    """

    def __init__(self, tolerance: float) -> None:
        self.tolerance = float(tolerance)
        self._best: dict[str, tuple[dict[str, Any], Any]] = {}
        self._frontier: list[tuple[dict[str, Any], Any]] = []  # constrained candidates
        self._best_worst = float("-inf")

    def offer(self, row: dict[str, Any], snapshot: Callable[[], Any]) -> None:
        state: list[Any] = []

        def take() -> Any:
            if not state:
                state.append(snapshot())
            return state[0]
        keys = {OVERALL: lambda r: _overall(r), WORST: lambda r: (_worst(r), _overall(r))}
        for rule, key in keys.items():
            if rule not in self._best or key(row) > key(self._best[rule][0]):
                self._best[rule] = (row, take())
        self._best_worst = max(self._best_worst, _worst(row))
        floor = self._best_worst - self.tolerance - _EPS
        frontier = [c for c in self._frontier if _worst(c[0]) >= floor]
        if _worst(row) >= floor and not any(_worst(c) >= _worst(row) and _overall(c) >= _overall(row)
                                            for c, _ in frontier):
            frontier = [c for c in frontier if not (_worst(row) >= _worst(c[0]) and _overall(row) > _overall(c[0]))]
            frontier.append((row, take()))
        self._frontier = frontier

    def chosen(self, rule: str) -> tuple[int, Any]:
        """(epoch, snapshot) that ``rule`` keeps among the epochs offered so far."""
        check_selection(rule)
        if rule == CONSTRAINED:
            pool = self._frontier
            best = pool[0]
            for candidate in pool[1:]:
                if _overall(candidate[0]) > _overall(best[0]) or (
                        _overall(candidate[0]) == _overall(best[0]) and candidate[0]["epoch"] < best[0]["epoch"]):
                    best = candidate
        else:
            best = self._best[rule]
        return int(best[0]["epoch"]), best[1]
