"""The 2D toy lab engine: masks, geometry counts, the B.1 example, the multi-seed effect, the CLI."""

import inspect
import io
import json
import threading
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch

from fairlin_core import toy
from fairlin_core.toy import worker
from conftest import run_cli
from fairlin_core.errors import FairLinError
from fairlin_core.models import build_model, relu_count, set_masks
from fairlin_core.runtime import Cancelled, Progress
from fairlin_core.toy import (ToyConfig, ToyJob, share_sweep, count_patterns, data_extent, decision_grid, linearization_masks,
                              load_toy, one_dimensional_example, patterns_on_grid, regions_along_segment, run_toy,
                              train_toy_model)

SMALL = ToyConfig(n=400, steps=150)


@pytest.fixture(scope="module")
def small_run():
    return run_toy(SMALL, seeds=[0, 1])


def test_masks_place_the_requested_share():
    model = build_model(SMALL.model_spec())

    def zeros(masks):
        return [int((m == 0).sum()) for m in masks.values()]
    assert sum(zeros(linearization_masks(model, 0.5, "random"))) == 16
    assert zeros(linearization_masks(model, 0.5, "neurons")) == [8, 8]
    assert zeros(linearization_masks(model, 0.3, "neurons")) == [5, 5]  # 9.6 -> 10 units, 5 per layer
    assert zeros(linearization_masks(model, 0.5, "last")) == [0, 16]
    assert zeros(linearization_masks(model, 0.75, "last")) == [8, 16]
    assert zeros(linearization_masks(model, 1.0, "random")) == [16, 16]
    first = linearization_masks(model, 0.5, "random", torch.Generator().manual_seed(3))
    again = linearization_masks(model, 0.5, "random", torch.Generator().manual_seed(3))
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_decision_grid_shapes():
    bundle = load_toy(SMALL, 0)
    extent = data_extent(bundle)
    assert extent[0] < -1 and extent[1] > 1
    grid = decision_grid(build_model(SMALL.model_spec()), extent, resolution=30)
    assert grid.proba.shape == grid.predicted.shape == (30, 30)
    assert grid.xs.shape == grid.ys.shape == (30,)
    assert grid.extent == pytest.approx(extent, abs=1e-6)
    assert ((grid.proba >= 0) & (grid.proba <= 1)).all() and set(np.unique(grid.predicted)) <= {0, 1}
    assert ((grid.proba > 0.5) == (grid.predicted == 1)).all()


def test_linear_regions_fall_as_units_are_linearized():
    bundle = load_toy(SMALL, 0)
    model, _ = train_toy_model(bundle, SMALL.model_spec(), steps=150, seed=0)
    extent = data_extent(bundle)
    corner, opposite = (extent[0], extent[2]), (extent[1], extent[3])
    full = (patterns_on_grid(model, extent, 100), regions_along_segment(model, corner, opposite))
    set_masks(model, linearization_masks(model, 0.5, "random"))
    half = (patterns_on_grid(model, extent, 100), regions_along_segment(model, corner, opposite))
    set_masks(model, linearization_masks(model, 1.0, "random"))
    none = (patterns_on_grid(model, extent, 100), regions_along_segment(model, corner, opposite))
    assert full[0] > half[0] > none[0] == 1
    assert full[1] > half[1] >= none[1] == 1
    assert count_patterns(np.zeros((5, 0), dtype=bool)) == 1


def test_appendix_b1_three_pieces_versus_two():
    both = one_dimensional_example()
    assert both.pieces == 3 and both.breakpoints.tolist() == [-1.0, 1.0]
    assert both.units.shape == (601, 2) and both.output.shape == both.x.shape == (601,)
    np.testing.assert_allclose(both.output, np.maximum(both.x + 1, 0) - 2 * np.maximum(both.x - 1, 0), atol=1e-5)
    for unit, kink in [(0, 1.0), (1, -1.0)]:
        one = one_dimensional_example([unit])
        assert one.pieces == 2 and one.breakpoints.tolist() == [kink] and one.linearized == (unit,)
    assert one_dimensional_example([0, 1]).pieces == 1
    with pytest.raises(FairLinError, match="units 0..1"):
        one_dimensional_example([2])


def test_run_toy_tables(small_run):
    acc = small_run.accuracy
    assert list(acc.columns) == ["seed", "model", "split", "group", "n", "accuracy"]
    assert len(acc) == 2 * 2 * 2 * 3 and acc["accuracy"].between(0, 1).all()
    assert set(acc["group"]) == {"overall", "majority", "minority"}
    geometry = small_run.geometry.set_index(["seed", "model"])
    assert (geometry.xs("relu", level="model")["relu_count"] == 32).all()
    assert (geometry.xs("linearized", level="model")["relu_count"] == 16).all()
    assert (geometry["patterns_on_grid"] >= 1).all() and (geometry["seconds"] > 0).all()
    assert len(small_run.margins) == 8 and (small_run.margins["input_margin_mean"] > 0).all()
    assert len(small_run.history) == 2 * 2 * SMALL.steps
    summary = small_run.summary()
    assert list(summary.columns) == ["model", "group", "mean", "sd", "seeds"] and (summary["seeds"] == 2).all()
    points = small_run.points(0, "linearized")
    assert {"x", "y", "class", "prediction", "correct"} <= set(points.columns) and len(points) == 80


def test_same_seed_same_numbers(small_run):
    again = run_toy(SMALL, seeds=[1])
    first = small_run.accuracy[small_run.accuracy["seed"] == 1].reset_index(drop=True)
    assert first.equals(again.accuracy)
    assert torch.equal(small_run.models[(1, "relu")].layers[1].weight, again.models[(1, "relu")].layers[1].weight)


def test_progress_and_cancel():
    updates = []
    run_toy(ToyConfig(n=200, steps=40), seeds=[0], progress=updates.append, preview_every=20)
    fractions = [u.fraction for u in updates]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("boundary" in u.metrics for u in updates)
    assert {u.metrics.get("model") for u in updates if "loss" in u.metrics} == {"relu", "linearized"}
    flag = threading.Event()
    flag.set()
    with pytest.raises(Cancelled):
        run_toy(ToyConfig(n=200, steps=40), seeds=[0], cancel=flag)


def test_snl_mode_keeps_the_budget():
    result = run_toy(ToyConfig(n=300, steps=150, mode="snl", linearized=0.25), seeds=[0])
    counts = result.geometry.set_index("model")["relu_count"]
    assert counts["relu"] == 32 and counts["linearized"] == 24
    assert set(result.history["stage"]) == {"train", "snl", "finetune"}


@pytest.mark.parametrize("changes,message", [
    ({"linearized": 1.5}, "[0, 1]"), ({"which": "middle"}, "random, neurons, last"),
    ({"mode": "deepreduce"}, "scratch, snl"), ({"shape": "blob"}, "paper"), ({"steps": 0}, "positive"),
    ({"mode": "snl", "which": "last"}, "SNL learns"), ({"mode": "snl", "linearized": 1.0}, "at least one ReLU"),
    ({"width": 0}, "positive integer"),
])
def test_bad_config_says_what_was_expected(changes, message):
    with pytest.raises(FairLinError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_toy(ToyConfig(**changes), seeds=[0])


def test_toy_job_trains_in_a_prewarmed_child_process_and_can_be_stopped():
    toy.prewarm()
    spare = worker._spare
    job = ToyJob(ToyConfig(n=200, steps=60), [0], preview_every=30).start()
    assert job._process is spare and worker._spare is None
    job.join(120)
    state = job.snapshot()
    assert not state["running"] and state["error"] is None and state["cancelled"] is False
    assert state["result"].summary()["seeds"].eq(1).all()
    assert set(state["previews"]) == {"relu", "linearized"} and len(state["loss"]) == 6
    running = ToyJob(ToyConfig(steps=4000), [0, 1]).start()
    running.cancel()
    running.join(60)
    assert running.snapshot()["cancelled"] and running.snapshot()["result"] is None
    never = ToyJob(ToyConfig(), [0])
    never.cancel()
    assert never.start().snapshot()["cancelled"] and not never.running


def _assert_same_result(got, expected, exact=True):
    assert got.config == expected.config and got.seeds == expected.seeds
    pd.testing.assert_frame_equal(got.accuracy, expected.accuracy, check_exact=True)
    for name in ("margins", "history"):
        pd.testing.assert_frame_equal(getattr(got, name), getattr(expected, name), check_exact=exact)
    pd.testing.assert_frame_equal(got.geometry.drop(columns="seconds"), expected.geometry.drop(columns="seconds"))
    assert list(got.models) == list(expected.models) and list(got.bundles) == list(expected.bundles)
    for (seed, kind), model in expected.models.items():
        copy = got.models[(seed, kind)]
        assert not copy.training and relu_count(copy) == relu_count(model)  # the masks came along
        pd.testing.assert_frame_equal(got.points(seed, kind), expected.points(seed, kind))
        for name, tensor in model.state_dict().items():
            torch.testing.assert_close(copy.state_dict()[name], tensor)


def test_result_messages_rebuild_the_result_exactly(small_run):
    message = json.loads(json.dumps(worker._encode_result(small_run)))
    _assert_same_result(worker._decode_result(message), small_run)
    assert worker._decode_result(message).geometry.equals(small_run.geometry)
    message["digests"]["1"] = "0" * 64
    with pytest.raises(FairLinError, match="seed 1"):
        worker._decode_result(message)


def test_frames_are_json_and_previews_keep_their_dtypes():
    grid = decision_grid(build_model(SMALL.model_spec()), (-1.0, 1.0, -1.0, 1.0), resolution=7)
    update = Progress(0.5, "train", "step 5/10", {"seed": 0, "model": "relu", "step": 5, "loss": 0.25,
                                                       "boundary": grid})
    stream = io.BytesIO()
    worker._write_frame(stream, ["progress", worker._encode_progress(update)])
    data = stream.getvalue()
    assert int.from_bytes(data[:4], "big") == len(data) - 4 and json.loads(data[4:])[0] == "progress"
    kind, payload = worker._read_frame(io.BytesIO(data))
    back = worker._decode_progress(payload)
    assert (back.fraction, back.stage, back.message) == (0.5, "train", "step 5/10")
    assert {k: v for k, v in back.metrics.items() if k != "boundary"} == {"seed": 0, "model": "relu", "step": 5,
                                                                           "loss": 0.25}
    for name in ("xs", "ys", "proba", "predicted"):
        sent, received = getattr(grid, name), getattr(back.metrics["boundary"], name)
        assert received.dtype == sent.dtype and np.array_equal(received, sent)
    assert worker._read_frame(io.BytesIO(data[:-1])) is None and worker._read_frame(io.BytesIO(b"")) is None


def test_toy_job_result_equals_an_in_process_run():
    config, seeds = ToyConfig(n=200, steps=30), [0, 1]
    job = ToyJob(config, seeds, preview_every=10).start()
    job.join(180)
    state = job.snapshot()
    assert not state["running"] and state["error"] is None and state["cancelled"] is False
    # The child trains single-threaded; this process may use more threads, so losses may differ in the last bits.
    _assert_same_result(state["result"], run_toy(config, seeds), exact=False)
    assert list(state["loss"].columns) == ["seed", "model", "step", "loss"] and len(state["loss"]) == 2 * 2 * 2
    for model, (seed, grid) in state["previews"].items():
        assert seed == 1 and grid.proba.shape == (60, 60) and grid.proba.dtype == np.float32
        assert grid.predicted.dtype == np.int64 and grid.xs.dtype == np.float64


def test_toy_modules_never_unpickle():
    from fairlin_core.toy import geometry, training
    for module in (toy, training, geometry, worker):
        source = inspect.getsource(module)
        assert not hasattr(module, "pickle") and "import pickle" not in source, module.__name__
        assert "pickle.load" not in source and "pickle.dump" not in source, module.__name__


def test_share_sweep_matches_run_toy_at_each_share():
    config, seeds = ToyConfig(n=300, steps=120), [0, 1]
    sweep = share_sweep(config, [0.5, 0.25], seeds)
    assert sweep.shares == [0.0, 0.25, 0.5]
    summary = sweep.summary("test")
    assert list(summary["share"].unique()) == [0.0, 0.25, 0.5] and set(summary["group"]) == {"overall", "majority", "minority"}
    wide = sweep.wide("test")
    assert list(wide.index) == [0.0, 0.25, 0.5] and list(wide.columns) == ["minority", "majority", "overall"]
    minority = sweep.table.query("split == 'test' and group == 'minority' and share == 0.25")["accuracy"].mean()
    assert wide.loc[0.25, "minority"] == pytest.approx(minority)
    # share 0 is run_toy's ReLU model, share 0.5 its linearized model: same data, weights and placement per seed
    paired = run_toy(replace(config, linearized=0.5), seeds).accuracy
    for share, model in ((0.0, "relu"), (0.5, "linearized")):
        ours = sweep.table[sweep.table["share"] == share].set_index(["seed", "split", "group"])["accuracy"]
        theirs = paired[paired["model"] == model].set_index(["seed", "split", "group"])["accuracy"]
        pd.testing.assert_series_equal(ours.sort_index(), theirs.sort_index(), check_names=False)
    with pytest.raises(FairLinError, match="shares in"):
        share_sweep(config, [1.0], seeds)


def test_share_sweep_in_the_child_process_and_the_cli(capsys):
    config = ToyConfig(n=200, steps=40)
    job = ToyJob(config, [0], shares=[0.5]).start()
    job.join(180)
    state = job.snapshot()
    assert state["error"] is None and state["result"].shares == [0.0, 0.5]
    pd.testing.assert_frame_equal(state["result"].summary(), share_sweep(config, [0.5], [0]).summary(),
                                  check_exact=False, atol=1e-6)
    code, out, _ = run_cli(capsys, "toy", "--sweep", "0.5", "--seeds", "1", "--n", "200", "--steps", "40", "--json")
    document = json.loads(out)
    assert code == 0 and document["shares"] == [0.0, 0.5]
    assert {(row["share"], row["group"]) for row in document["summary"]} == {
        (s, g) for s in (0.0, 0.5) for g in ("overall", "majority", "minority")}
    code, _, err = run_cli(capsys, "toy", "--sweep", "0.5,nine")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--sweep" in err


def _minority_drop(result, group):
    means = result.summary("test").set_index(["model", "group"])["mean"]
    return means[("relu", group)] - means[("linearized", group)]


@pytest.mark.slow
def test_linearization_costs_the_paper_minority_but_not_the_disk():
    # Fewer steps than the default 2,000 to keep the suite fast; the effect is the same kind.
    paper = run_toy(ToyConfig(shape="paper", steps=800), seeds=range(5))
    assert _minority_drop(paper, "minority") > 0.01
    assert _minority_drop(paper, "minority") > _minority_drop(paper, "majority") + 0.01
    disk = run_toy(ToyConfig(shape="disk", steps=800), seeds=range(3))
    assert _minority_drop(disk, "minority") < 0.02
    assert abs(_minority_drop(disk, "majority")) < 0.01


def test_cli_json_shape(capsys):
    code, out, _ = run_cli(capsys, "toy", "--shape", "paper", "--linearized", "0.5", "--seeds", "2", "--n", "300",
                        "--steps", "100", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) == {"runs", "mean"} and [r["seed"] for r in data["runs"]] == [0, 1]
    for entry in data["runs"] + [data["mean"]]:
        for kind in ("relu", "linearized"):
            assert set(entry[kind]) == {"overall", "majority", "minority"}
            assert all(0.0 <= v <= 1.0 for v in entry[kind].values())
    assert data["mean"]["relu"]["minority"] == pytest.approx(np.mean([r["relu"]["minority"] for r in data["runs"]]))


@pytest.mark.parametrize("argv,message", [
    (["--linearized", "1.5"], "[0, 1]"), (["--seeds", "0"], "positive integer"), (["--which", "middle"], "neurons"),
    (["--shape", "paper", "--minority-ratio", "0.2"], "minority_ratio"),
])
def test_cli_errors_are_one_line(capsys, argv, message):
    try:
        code, out, err = run_cli(capsys, "toy", *argv, "--json")
    except SystemExit as exit:  # refused while parsing (a flag out of its range)
        code, (out, err) = exit.code, capsys.readouterr()
    assert code == 2 and out == ""
    assert "error: " in err and message in err and err.count("\n") == 1
