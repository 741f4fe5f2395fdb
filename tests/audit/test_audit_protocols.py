"""Runs grouped by recipe into series (audit/protocols.py): what joins one series and what starts another."""

from fairlin_core.audits.protocols import joins, series
from fairlin_core.finetune import FinetuneConfig, MitigationConfig
from fairlin_core.linearizers import LinearizeRecipe, SNLConfig

GROUPDRO = MitigationConfig(method="groupdro")


def _recipe(method: str, seed: int = 0, *, snl: int = 30, finetune: int = 10, mitigation=None) -> LinearizeRecipe:
    return LinearizeRecipe(method=method, budget="10%", seed=seed, snl=SNLConfig(epochs=snl),
                           finetune=FinetuneConfig(epochs=finetune), mitigation=mitigation)


def test_methods_and_plain_twins_join_one_series_named_by_its_snl_schedule():
    runs = {"snl": _recipe("snl"), "snl-dro": _recipe("snl", mitigation=GROUPDRO),
            "random": _recipe("random", snl=100), "random-dro": _recipe("random", seed=1, mitigation=GROUPDRO)}
    [(protocol, members)] = series(runs)
    assert members == list(runs)  # random runs join whatever SNL schedule they name; plain runs join the groupdro
    assert protocol.describe() == "finetune 10 ep · SNL 30 ep · groupdro eta 0.01"
    assert (protocol.budget, protocol.seed, protocol.diagnostics) == (LinearizeRecipe().budget, 0, ())


def test_another_schedule_or_mitigation_is_another_series_and_plain_runs_join_each_mitigation():
    runs = {"a": _recipe("snl"), "b": _recipe("snl", snl=100), "lag": _recipe("snl", mitigation=MitigationConfig()),
            "dro": _recipe("snl", mitigation=GROUPDRO), "r": _recipe("random"), "long": _recipe("random", finetune=20)}
    found = {protocol.describe(): members for protocol, members in series(runs)}
    assert found == {"finetune 10 ep · SNL 30 ep · groupdro eta 0.01": ["a", "dro", "r"],
                     "finetune 10 ep · SNL 30 ep · lagrangian mu 0.01": ["a", "lag", "r"],
                     "finetune 10 ep · SNL 100 ep · plain finetune": ["b", "r"],
                     "finetune 20 ep · plain finetune": ["long"]}
    assert not joins(runs["lag"], _recipe("snl", mitigation=GROUPDRO))  # a mitigated run never joins another
    assert joins(runs["r"], _recipe("snl", snl=7))
