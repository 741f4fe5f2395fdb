"""Linearizers on the shipped digits model: exact budgets, frozen binary masks, DeepReDuce mapping,
the real base model as KD teacher, finetune gains, cancel and determinism; the linearizer registry."""

import copy
import threading

import pandas as pd
import pytest
import torch

from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.errors import FairLinError
from fairlin_core.checkpoints import load_dataset_for
from fairlin_core.finetune import FinetuneConfig
import fairlin_core.linearizers.base as linearize_base
from fairlin_core.linearizers import (LINEARIZERS, METHODS, Linearizer, LinearizeOptions, Placement, SNLConfig,
                                    get_linearizer, linearize, linearize_sweep, nearest_configuration,
                                    register_linearizer, resolve_budget)
from fairlin_core.linearizers.output import save_linearized
from fairlin_core.models import activation_sites, relu_count, resolve_spec
from fairlin_core.runtime import Cancelled, report

QUICK = LinearizeOptions(snl=SNLConfig(epochs=3), finetune=FinetuneConfig(epochs=2))
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def base():
    checkpoint = load_checkpoint(SHIPPED_CHECKPOINTS / "digits_resnet18.safetensors")
    return checkpoint, load_dataset_for(checkpoint.sidecar)


def test_budget_parsing():
    assert resolve_budget(500, 7680) == 500
    assert resolve_budget(0.1, 7680) == 768
    assert resolve_budget("10%", 7680) == 768
    assert resolve_budget("0.05", 7680) == 384
    assert resolve_budget("1.0", 7680) == 7680
    for bad, message in [(0, "positive"), (-3, "positive"), (8000, "above"), ("abc", "not a number"),
                         (1.5, r"\(0, 1\]"), ("0%", r"\(0, 1\]")]:
        with pytest.raises(FairLinError, match=message):
            resolve_budget(bad, 7680)


@pytest.mark.parametrize("method", ["snl", "random"])
def test_exact_budget_and_binary_frozen_masks(base, method):
    checkpoint, bundle = base
    results = linearize_sweep(checkpoint.model, checkpoint.spec, bundle, method, [0.2, 77], options=QUICK,
                              device=CPU)
    assert [r.relu_count for r in results] == [1536, 77]
    for result in results:
        for name, site in activation_sites(result.model):
            assert set(site.alpha.unique().tolist()) <= {0.0, 1.0}, name
            assert not site.alpha.requires_grad
            assert torch.equal(site.alpha, result.masks[name])
    assert relu_count(checkpoint.model) == 7680  # the base model is untouched


def test_snl_reference_mode_uses_the_threshold_rule(base):
    checkpoint, bundle = base
    options = LinearizeOptions(snl=SNLConfig(epochs=2), finetune=FinetuneConfig(epochs=0), exact=False)
    result = linearize(checkpoint.model, checkpoint.spec, bundle, "snl", 38, options=options, device=CPU)
    assert result.configuration["exact"] is False and result.configuration["budget_reached"] is False
    assert result.relu_count == result.configuration["snl_relu_count"] > 38


def test_snl_history_records_counts_and_lambda(base):
    checkpoint, bundle = base
    result = linearize(checkpoint.model, checkpoint.spec, bundle, "snl", 0.5, options=QUICK, device=CPU)
    snl = result.history[result.history["stage"] == "snl"]
    assert len(snl) == 3 and (snl["lambda"] > 0).all() and (snl["relu_count"] <= 7680).all()
    assert {"val_accuracy", "val_worst_group_accuracy", "val_acc:9"} <= set(result.history.columns)
    finetune = result.history[result.history["stage"] == "finetune"]
    assert list(finetune["epoch"]) == [0, 1, 2]


def test_deepreduce_maps_budgets_to_the_nearest_configuration():
    spec = resolve_spec("resnet18", 10, (3, 32, 32))
    for budget, count, text in [(480_000, 491_520, "no stage culled"), (230_000, 229_376, "stages 1 culled"),
                                (200_000, 196_608, "stages 1,4 culled"), (115_000, 114_688, "stages 1 culled + thinned"),
                                (98_000, 98_304, "stages 1,2 culled"), (50_000, 49_152, "stages 1,2 culled + thinned"),
                                (57_344, 57_344, "stages 1 culled + stride-2 stem")]:
        config, achieved = nearest_configuration(spec, budget)
        assert achieved == count and config.describe() == text, budget
    config, _ = nearest_configuration(spec, 57_344, stem_strides=(1,))
    assert config.stem_stride == 1


def test_deepreduce_result_reports_configuration_and_count(base):
    checkpoint, bundle = base  # width 16 on 8x8: stages hold 4096 / 2048 / 1024 / 512 ReLUs
    result = linearize(checkpoint.model, checkpoint.spec, bundle, "deepreduce", 0.5, options=QUICK, device=CPU)
    assert result.configuration["description"] == "no stage culled + thinned"
    assert result.relu_count == 3840 == result.budget
    culled = linearize(checkpoint.model, checkpoint.spec, bundle, "deepreduce", 3500, options=QUICK, device=CPU)
    assert culled.configuration["description"] == "stages 1 culled" and culled.relu_count == 3584
    # a stride-2 stem (maps 4x4 / 2x2 / 1x1 / 1x1) is picked only where no stride-1 configuration is as near
    stride2 = linearize(checkpoint.model, checkpoint.spec, bundle, "deepreduce", 128, options=QUICK, device=CPU)
    assert stride2.configuration["description"] == "stages 1,2,4 culled + thinned + stride-2 stem"
    assert stride2.spec.options["stem_stride"] == 2 and stride2.relu_count == 128
    tie = linearize(checkpoint.model, checkpoint.spec, bundle, "deepreduce", 2304, options=QUICK, device=CPU)
    assert tie.spec.options["stem_stride"] == 1 and tie.relu_count == 2304


def test_deepreduce_refuses_non_resnets():
    toy = load_checkpoint(SHIPPED_CHECKPOINTS / "toy2d_mlp.safetensors")
    with pytest.raises(FairLinError, match="ResNets"):
        linearize(toy.model, toy.spec, load_dataset_for(toy.sidecar), "deepreduce", 0.5, options=QUICK, device=CPU)


def test_kd_teacher_is_the_base_checkpoint(base, monkeypatch):
    checkpoint, bundle = base
    import fairlin_core.finetune.loop as loop
    seen = []
    real = loop.teacher_logits

    def recording(teacher, x, device):
        logits = real(teacher, x, device)
        seen.append(teacher)
        return logits
    monkeypatch.setattr(loop, "teacher_logits", recording)
    result = linearize(checkpoint.model, checkpoint.spec, bundle, "random", 0.5, options=QUICK, device=CPU)
    from fairlin_core.metrics import evaluate_model
    teacher_eval = evaluate_model(seen[0], bundle, "test")
    assert teacher_eval["overall_accuracy"] == pytest.approx(checkpoint.sidecar["evaluation"]["overall_accuracy"])
    assert result.evaluations["base"]["test"]["overall_accuracy"] == pytest.approx(teacher_eval["overall_accuracy"])
    assert relu_count(seen[0]) == 7680


def test_finetune_improves_on_the_frozen_mask_starting_point(base):
    checkpoint, bundle = base
    options = LinearizeOptions(finetune=FinetuneConfig(epochs=4))
    result = linearize(checkpoint.model, checkpoint.spec, bundle, "random", 0.05, options=options, device=CPU)
    history = result.history
    start = history.loc[history["epoch"] == 0, "val_accuracy"].item()
    assert history["val_accuracy"].max() > start + 0.1
    assert (result.evaluations["finetuned"]["test"]["overall_accuracy"]
            > result.evaluations["linearized"]["test"]["overall_accuracy"] + 0.1)


class CancelAfter:
    """A cancel flag that turns on after ``n`` polls and counts the polls made after that."""

    def __init__(self, n):
        self.n, self.polls = n, 0

    def is_set(self):
        self.polls += 1
        return self.polls > self.n


@pytest.mark.parametrize("method,polls", [("snl", 5), ("random", 3)])
def test_cancel_stops_within_one_batch(base, method, polls):
    checkpoint, bundle = base
    flag = CancelAfter(polls)
    with pytest.raises(Cancelled):
        linearize(checkpoint.model, checkpoint.spec, bundle, method, 0.1, options=QUICK, device=CPU, cancel=flag)
    assert flag.polls == polls + 1  # the first poll that saw the flag raised


def test_cancel_from_another_thread(base):
    checkpoint, bundle = base
    event = threading.Event()
    timer = threading.Timer(0.5, event.set)
    timer.start()
    with pytest.raises(Cancelled):
        linearize(checkpoint.model, checkpoint.spec, bundle, "snl", 0.1,
                  options=LinearizeOptions(snl=SNLConfig(epochs=50)), device=CPU, cancel=event)


@pytest.mark.parametrize("method", ["snl", "random"])
def test_same_seed_same_result(base, method):
    checkpoint, bundle = base
    first = linearize(checkpoint.model, checkpoint.spec, bundle, method, 0.1, options=QUICK, seed=3, device=CPU)
    second = linearize(checkpoint.model, checkpoint.spec, bundle, method, 0.1, options=QUICK, seed=3, device=CPU)
    for (name, a), b in zip(first.model.state_dict().items(), second.model.state_dict().values()):
        assert torch.equal(a, b), name
    other = linearize(checkpoint.model, checkpoint.spec, bundle, method, 0.1, options=QUICK, seed=4, device=CPU)
    assert not all(torch.equal(a, b) for a, b in zip(first.masks.values(), other.masks.values()))


def test_saved_result_is_a_loadable_checkpoint(base, tmp_path):
    checkpoint, bundle = base
    result = linearize(checkpoint.model, checkpoint.spec, bundle, "random", 100, options=QUICK, device=CPU)
    path = save_linearized(result, tmp_path / "out", bundle, base_checkpoint=checkpoint.path)
    loaded = load_checkpoint(tmp_path / "out")
    assert loaded.path == path and relu_count(loaded.model) == 100
    assert loaded.sidecar["kind"] == "linearized" and loaded.sidecar["method"] == "random"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["model.json", "model.safetensors"]


def test_registry_lists_the_three_methods():
    assert METHODS == tuple(LINEARIZERS) == ("snl", "deepreduce", "random")
    assert all(get_linearizer(name).name == name for name in METHODS)
    assert get_linearizer("snl").placing_share == 0.5 and get_linearizer("random").placing_share == 0.0


def test_unknown_method_names_the_known_ones():
    with pytest.raises(FairLinError, match="unknown method 'magic'; expected one of snl, deepreduce, random"):
        get_linearizer("magic")
    toy = load_checkpoint(SHIPPED_CHECKPOINTS / "toy2d_mlp.safetensors")
    with pytest.raises(FairLinError, match="expected one of snl, deepreduce, random"):
        linearize(toy.model, toy.spec, load_dataset_for(toy.sidecar), "magic", 0.5, options=QUICK, device=CPU)
    with pytest.raises(FairLinError, match="already registered"):
        register_linearizer(get_linearizer("snl"))


class KeepFirst(Linearizer):
    """Keeps the first ``budget`` mask entries in site order (flattened), on a copy of the base."""

    name = "keep_first"
    placing_share = 0.25

    def place_masks(self, base, base_spec, bundle, budgets, options, *, seed, device, progress=None, cancel=None):
        placements = []
        for budget in budgets:
            student = copy.deepcopy(base)
            left = budget
            with torch.no_grad():
                for _, site in activation_sites(student):
                    keep = torch.arange(site.alpha.numel()) < left
                    site.alpha.copy_(keep.to(site.alpha.dtype).view_as(site.alpha))
                    site.alpha.requires_grad_(False)
                    left = max(0, left - site.alpha.numel())
            placements.append(Placement(student, base_spec, {"placement": "first entries"}, pd.DataFrame()))
        report(progress, 1.0, "keep_first", "placed")
        return placements


def test_a_registered_linearizer_runs_end_to_end(monkeypatch):
    monkeypatch.setattr(linearize_base, "LINEARIZERS", LINEARIZERS.copy())
    register_linearizer(KeepFirst())
    toy = load_checkpoint(SHIPPED_CHECKPOINTS / "toy2d_mlp.safetensors")  # MLP: 2 sites of 16 ReLUs
    seen = []
    result = linearize(toy.model, toy.spec, load_dataset_for(toy.sidecar), "keep_first", 20,
                       options=LinearizeOptions(finetune=FinetuneConfig(epochs=1)), device=CPU, progress=seen.append)
    assert result.method == "keep_first" and result.relu_count == 20 == result.budget
    assert result.configuration["placement"] == "first entries"
    assert [m.sum().item() for m in result.masks.values()] == [16, 4]
    assert result.masks["layers.4"][:4].tolist() == [1.0] * 4
    assert relu_count(toy.model) == 32  # the base model is untouched
    placing = [u.fraction for u in seen if u.stage == "keep_first"]
    assert placing == [0.25] and all(u.fraction >= 0.25 for u in seen if u.stage != "keep_first")
    assert "keep_first" not in LINEARIZERS  # registered only in the test's copy of the registry
