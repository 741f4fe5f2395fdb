"""Validation model selection: each rule picks the right epoch of a made-up history, the online
Selector (what one finetune keeps) agrees with the rule applied to the whole history, and one
finetune returns every rule's model."""

import pytest
import torch

from fairlin_core.checkpoints import load_checkpoint, load_dataset_for
from fairlin_core.errors import FairLinError
from fairlin_core.finetune import SELECTIONS, FinetuneConfig, Selector, finetune, select_epoch
from fairlin_core.linearizers import LinearizeOptions, prepare_students
from conftest import TOY

# epoch: (overall, worst-group) validation accuracy
HISTORY = {0: (0.80, 0.40), 1: (0.90, 0.50), 2: (0.88, 0.70), 3: (0.86, 0.74), 4: (0.70, 0.75), 5: (0.90, 0.60),
           6: (0.87, 0.75)}
ROWS = [{"epoch": e, "val_accuracy": o, "val_worst_group_accuracy": w} for e, (o, w) in HISTORY.items()]


@pytest.mark.parametrize("rule,tolerance,epoch", [
    ("overall", 0.0, 1),        # 0.90 first reached at epoch 1 (epoch 5 ties, later)
    ("worst-group", 0.0, 6),    # 0.75 at epochs 4 and 6: the better overall one
    ("constrained", 0.0, 6),    # only epochs 4 and 6 reach the best worst group 0.75
    ("constrained", 0.02, 6),   # epochs 3 (0.74), 4, 6 qualify: 6 has the best overall
    ("constrained", 0.06, 2),   # 2 (0.70) joins: its 0.88 is the best overall among them
    ("constrained", 0.5, 1),    # everything qualifies: the best overall
])
def test_each_rule_picks_the_right_epoch(rule, tolerance, epoch):
    assert select_epoch(ROWS, rule, tolerance) == epoch
    selector = Selector(tolerance)
    for row in ROWS:
        selector.offer(row, lambda row=row: f"state {row['epoch']}")
    assert selector.chosen(rule) == (epoch, f"state {epoch}")


def test_the_online_selector_agrees_with_the_whole_history_on_random_histories():
    generator = torch.Generator().manual_seed(0)
    for _ in range(200):
        values = (torch.randint(0, 6, (12, 2), generator=generator) / 5).tolist()
        rows = [{"epoch": e, "val_accuracy": o, "val_worst_group_accuracy": w} for e, (o, w) in enumerate(values)]
        for tolerance in (0.0, 0.2, 0.4):
            selector = Selector(tolerance)
            for row in rows:
                selector.offer(row, lambda row=row: row["epoch"])
            for rule in SELECTIONS:
                assert selector.chosen(rule)[0] == select_epoch(rows, rule, tolerance), (rule, tolerance, rows)


def test_an_unknown_rule_is_refused():
    with pytest.raises(FairLinError, match="unknown selection 'best'; expected one of overall, worst-group"):
        FinetuneConfig(select="best").validate()


def test_one_finetune_returns_every_rules_model():
    checkpoint = load_checkpoint(TOY)
    bundle = load_dataset_for(checkpoint.sidecar)
    config = FinetuneConfig(epochs=4)
    student = prepare_students(checkpoint.model, checkpoint.spec, bundle, "random", [0.5],
                               options=LinearizeOptions(finetune=config), seed=0).students[0]
    result = finetune(student.model, checkpoint.model, bundle, config, seed=0)
    rows = result.history.to_dict("records")
    for rule in SELECTIONS:
        epoch, model = result.model_for(rule)
        assert epoch == select_epoch(rows, rule, config.select_tolerance)
        again = finetune(student.model, checkpoint.model, bundle, FinetuneConfig(epochs=4, select=rule), seed=0)
        assert again.best_epoch == epoch
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.model.state_dict().values()))


def test_auto_is_constrained_when_mitigated_and_overall_when_plain():
    from fairlin_core.finetune import resolve_selection
    assert FinetuneConfig().select == "auto"
    assert resolve_selection("auto", mitigated=True) == "constrained"
    assert resolve_selection("auto", mitigated=False) == "overall"
    assert resolve_selection("worst-group", mitigated=False) == "worst-group"


def test_finish_selections_evaluates_each_selected_epoch_once(monkeypatch):
    from fairlin_core.linearizers import api
    checkpoint = load_checkpoint(TOY)
    bundle = load_dataset_for(checkpoint.sidecar)
    prepared = prepare_students(checkpoint.model, checkpoint.spec, bundle, "random", [0.5],
                                options=LinearizeOptions(finetune=FinetuneConfig(epochs=4)), seed=0)
    evaluated = []
    evaluate_all = api._evaluate_all
    monkeypatch.setattr(api, "_evaluate_all", lambda model, bundle: evaluated.append(1) or evaluate_all(model, bundle))
    rules = (*SELECTIONS, "overall")  # "overall" twice: the same epoch by construction
    results = api.finish_selections(prepared, prepared.students[0], bundle, rules)
    epochs = {rule: result.configuration["finetune_best_epoch"] for rule, result in results.items()}
    assert len(evaluated) == len(set(epochs.values()))
    for rule, result in results.items():  # each rule's evaluation is of its own selected model
        assert result.evaluations["finetuned"] == evaluate_all(result.model, bundle)
