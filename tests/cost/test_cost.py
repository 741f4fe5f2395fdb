"""The private-inference cost model: ReLU and MAC accounting against `relu-count`, a profile's arithmetic
checked by hand on a two-layer model, profile validation (exit 2, one line naming the field), the shipped
profiles, and the estimates the audit results carry per run (the shipped digits audit, not recomputed)."""

import copy
import json
import os

import pandas as pd
import pytest
import torch
from conftest import DIGITS, TOY
from torch import nn

import fairlin_core as fl
from fairlin_core.audits import SHIPPED_AUDIT
from fairlin_core.cli import main
from fairlin_core.costs import estimate, layer_table, list_profiles, load_profile, pareto_front
from fairlin_core.costs.pricing import _spread
from fairlin_core.errors import FairLinError
from fairlin_core.linearizers import DeepReduceConfig, apply_deepreduce
from fairlin_core.models import LinearizableReLU, build_model, relu_count, resolve_spec
from fairlin_core.viz.report import audit_report_html

ZOO = [("resnet18", ["--input-size", "8", "--channels", "1", "--width", "4"], {"width": 4}, (1, 8, 8)),
       ("resnet34", ["--input-size", "8", "--width", "4", "--stem-stride", "2"], {"width": 4, "stem_stride": 2},
        (3, 8, 8)),
       ("vgg19_bn", ["--input-size", "8", "--width", "4"], {"width": 4}, (3, 8, 8)),
       ("wrn22_8", ["--input-size", "8", "--width", "1"], {"width": 1}, (3, 8, 8)),
       ("mlp", ["--input-size", "5", "--depth", "3", "--width", "7"], {"depth": 3, "width": 7}, (5,))]


def _cli_json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("name, flags, options, shape", ZOO, ids=[z[0] for z in ZOO])
def test_relu_totals_equal_relu_count_for_zoo_models(capsys, name, flags, options, shape):
    counted = _cli_json(capsys, ["relu-count", "--model", name, *flags, "--json"])
    model = build_model(resolve_spec(name, 10, shape, **options))
    result = fl.cost(model, input_shape=shape)
    assert result.totals["relu_count"] == result.totals["relu_sites"] == counted["relu_count"]
    per_site = {row["site"]: row["relu_count"] for row in counted["per_site"]}
    relus = result.layers[result.layers["kind"] == "relu"]
    assert dict(zip(relus["layer"], relus["relus"])) == per_site  # the same sites, in forward order


def test_relu_totals_follow_the_masks_deepreduce_and_a_checkpoint(capsys, digits_checkpoint):
    counted = _cli_json(capsys, ["relu-count", "--model", "resnet18", "--input-size", "8", "--channels", "1",
                                 "--width", "16", "--cull", "1,2", "--thin", "--json"])
    model = copy.deepcopy(digits_checkpoint.model)
    apply_deepreduce(model, DeepReduceConfig((1, 2), True))
    full, culled = fl.cost(digits_checkpoint), fl.cost(model, input_shape=(1, 8, 8))
    assert culled.totals["relu_count"] == counted["relu_count"] == relu_count(model) < full.totals["relu_count"]
    assert culled.totals["macs"] == full.totals["macs"]  # linearizing leaves the linear layers as they are
    removed = full.totals["relu_count"] - culled.totals["relu_count"]
    delphi = load_profile("delphi")["relu"]
    assert full.totals["online_mb"] - culled.totals["online_mb"] == pytest.approx(
        removed * delphi["online_bytes"] / 1e6)
    cli = _cli_json(capsys, ["cost", "--checkpoint", DIGITS, "--json"])
    assert cli["totals"]["relu_count"] == digits_checkpoint.relu_count == 7680
    assert cli["totals"] == pytest.approx(full.totals) and cli["profile"]["name"] == "delphi"
    assert cli["profile"]["assumptions"] == {"network.bandwidth_mbps": load_profile().assumptions[
        "network.bandwidth_mbps"]}


class TwoLayer(nn.Module):
    """x (4,) -> fc 4->3 -> ReLU site (3,) with one entry linearized -> fc 3->2."""

    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(4, 3), LinearizableReLU((3,)), nn.Linear(3, 2)
        with torch.no_grad():
            self.act.alpha.copy_(torch.tensor([1.0, 0.0, 1.0]))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def _entry(value):
    return {"value": value, "derivation": "a round number for the hand check"}


ROUND = {"name": "round", "title": "round numbers",
         "source": {"paper": "none", "measurements": "none", "what": "a hand check"},
         "relu": {"online_bytes": _entry(100), "offline_bytes": _entry(1000), "online_seconds": _entry(0.01),
                  "offline_seconds": _entry(0.1)},
         "linear": {"online_bytes_per_input": _entry(2), "offline_bytes_per_input": _entry(10),
                    "offline_bytes_per_output": _entry(20), "online_seconds_per_mac": _entry(0.001),
                    "offline_seconds_per_mac": _entry(0.002)},
         "model_input": {"online_bytes_per_element": _entry(5)},
         "fixed": {"online_bytes": _entry(50), "offline_bytes": _entry(500), "offline_seconds": _entry(1)},
         "network": {"bandwidth_mbps": {"value": 8, "assumption": True, "reason": "1 MB per second"}}}


def test_a_profiles_arithmetic_on_a_two_layer_model_by_hand(tmp_path):
    path = tmp_path / "round.json"
    path.write_text(json.dumps(ROUND))
    result = fl.cost(TwoLayer(), str(path), input_shape=(4,))
    t = result.totals
    # 2 ReLUs on; MACs 4*3 + 3*2 = 18; linear inputs 4 + 3 = 7 elements, outputs 3 + 2 = 5
    assert (t["relu_count"], t["relu_sites"], t["macs"]) == (2, 3, 18)
    # online: 2*100 (ReLUs) + 7*2 (linear inputs) + 50 (fixed) + 4*5 (model input) = 284 bytes
    assert t["online_mb"] == pytest.approx(284e-6)
    # offline: 2*1000 + 7*10 + 5*20 + 500 = 2670 bytes
    assert t["offline_mb"] == pytest.approx(2670e-6)
    assert t["online_compute_s"] == pytest.approx(2 * 0.01 + 18 * 0.001)  # 0.038 s
    assert t["offline_compute_s"] == pytest.approx(2 * 0.1 + 18 * 0.002 + 1)  # 1.236 s
    # at 8 Mbit/s one MB takes one second
    assert t["online_latency_s"] == pytest.approx(0.038 + 284e-6)
    assert t["offline_latency_s"] == pytest.approx(1.236 + 2670e-6)
    assert t["total_latency_s"] == pytest.approx(t["online_latency_s"] + t["offline_latency_s"])
    layers = result.layers.set_index("layer")
    assert list(layers["kind"]) == ["fc", "relu", "fc", "fixed"]
    assert layers.loc["act", "online_mb"] == pytest.approx(200e-6)
    assert layers.loc["fc2", "offline_mb"] == pytest.approx((3 * 10 + 2 * 20) * 1e-6)
    # the shipped DELPHI profile on the same model: 2*1184 + 7*9.0006 + 131 bytes online
    assert fl.cost(TwoLayer(), "delphi", input_shape=(4,)).totals["online_mb"] == pytest.approx(
        (2 * 1184 + 7 * 9.0006 + 131) * 1e-6)


def _broken(tmp_path, change):
    data = copy.deepcopy(ROUND)
    change(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("change, field", [
    (lambda d: d["relu"]["offline_bytes"].update(value=-1), "relu.offline_bytes.value"),
    (lambda d: d["linear"]["online_seconds_per_mac"].pop("derivation"), "linear.online_seconds_per_mac.derivation"),
    (lambda d: d["network"]["bandwidth_mbps"].pop("reason"), "network.bandwidth_mbps.reason"),
    (lambda d: d["fixed"].pop("offline_seconds"), "fixed.offline_seconds"),
    (lambda d: d["source"].pop("paper"), "source.paper"),
    (lambda d: d.pop("model_input"), "model_input"),
], ids=["negative", "no-derivation", "assumption-without-reason", "missing", "no-source", "no-section"])
def test_an_invalid_profile_is_refused_naming_the_field(tmp_path, capsys, change, field):
    path = _broken(tmp_path, change)
    assert main(["cost", "--checkpoint", TOY, "--profile", path, "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and f"'{field}" in captured.err
    with pytest.raises(FairLinError, match=field.replace(".", r"\.")):
        load_profile(path)


def test_unknown_and_unreadable_profiles_are_refused(tmp_path, capsys):
    assert main(["cost", "--checkpoint", TOY, "--profile", "cheetah-nope"]) == 2
    assert "unknown cost profile 'cheetah-nope'; expected one of delphi" in capsys.readouterr().err
    (tmp_path / "x.json").write_text("{not json")
    assert main(["cost", "--checkpoint", TOY, "--profile", str(tmp_path / "x.json")]) == 2
    assert "is not valid JSON" in capsys.readouterr().err


def test_shipped_profiles_validate_and_name_their_sources():
    assert {"delphi", "delphi-client-garbler"} <= set(list_profiles())
    for name in list_profiles():
        profile = load_profile(name)
        assert profile.name == name and "USENIX Security 2020" in profile.source["paper"]
        assert "github.com/kvgarimella/cryptonite" in profile.source["measurements"]
        assert set(profile.assumptions) == {"network.bandwidth_mbps"}  # the only parameter no source gives
    server, client = load_profile("delphi"), load_profile("delphi-client-garbler")
    # the client garbler moves the OTs online: 1,344 + 672 bytes per ReLU leave offline and join online
    assert client["relu"]["online_bytes"] - server["relu"]["online_bytes"] == 1344 + 672
    assert server["relu"]["offline_bytes"] - client["relu"]["offline_bytes"] == 1344 + 672


def test_a_relu_count_is_spread_over_the_sites_exactly():
    assert _spread(7, [4, 2, 2]) == [3, 2, 2]  # shares 3.5, 1.75, 1.75: the largest remainders round up
    assert sum(_spread(38, [1024] * 4 + [512] * 4)) == 38
    layers = layer_table(TwoLayer(), (4,))
    assert estimate(layers, 4, "delphi", relu_count=1).totals["relu_count"] == 1
    with pytest.raises(FairLinError, match="outside 0..3"):
        estimate(layers, 4, "delphi", relu_count=4)


def test_shipped_audit_carries_estimates_per_run_and_the_front():
    results = fl.load_results(SHIPPED_AUDIT)
    costs = results.run_costs("delphi")
    runs = results.runs.set_index("run_id")
    assert list(costs["run_id"]) == list(runs.index) and (costs["profile"] == "delphi").all()
    assert (costs.set_index("run_id")["relu_count"] == runs["relu_count"]).all()
    by_run = costs.set_index("run_id")
    # DeepReDuce's stride-2 stem shrinks the maps: fewer MACs than SNL at a larger ReLU count
    assert by_run.loc["deepreduce-2%-seed0-mit-off", "macs"] < by_run.loc["snl-1%-seed0-mit-off", "macs"]
    assert by_run.loc["snl-20%-seed0-mit-off", "macs"] == fl.cost(DIGITS).totals["macs"]
    front = results.cost_front("test", "delphi")
    base = front[front["method"] == "base"].iloc[0]
    assert base["relu_count"] == 7680 and base["online_latency_s"] == front["online_latency_s"].max()
    assert results.minority_groups() == ["5", "6", "7", "8", "9"]
    for accuracy, flag in (("worst_group_accuracy", "front_worst"), ("minority_accuracy", "front_minority")):
        on = front[front[flag]]
        assert len(on) >= 2 and base[flag]  # the most accurate point is the base model
        for _, point in front[~front[flag]].iterrows():  # everything off the front is dominated
            assert ((on["online_latency_s"] <= point["online_latency_s"]) & (on[accuracy] >= point[accuracy])).any()
    keys = ["method", "budget", "mitigation"]
    other = results.cost_front("test", "delphi-client-garbler").set_index(keys)
    same = front.set_index(keys).reindex(other.index)
    assert (other["offline_mb"] < same["offline_mb"]).all()  # the client garbler moves the OTs online
    assert other.loc[("base", "100%", "none"), "online_mb"] > same.loc[("base", "100%", "none"), "online_mb"]


def test_the_pareto_front_keeps_the_points_nothing_cheaper_and_better_dominates():
    cost = pd.Series([1.0, 2.0, 2.0, 3.0, 0.5])
    value = pd.Series([0.5, 0.7, 0.6, 0.7, float("nan")])
    # (2, 0.6) is beaten by (2, 0.7) at equal cost, (3, 0.7) by (2, 0.7) at equal value; NaN is never on it
    assert pareto_front(cost, value) == [True, True, False, False, False]


def test_the_html_report_includes_the_front():
    results = fl.load_results(SHIPPED_AUDIT)
    page = audit_report_html(results, split="test", method="snl", profile="delphi-client-garbler")
    assert "Accuracy vs estimated private-inference latency" in page
    assert "Pareto points: accuracy vs estimated latency (delphi-client-garbler)" in page
    assert "Accuracy vs estimated online latency (delphi-client-garbler)" in page and "worst-group and minority" in page


def test_a_profile_nested_too_deep_or_no_regular_file_is_one_line(tmp_path, capsys):
    """A profile of 100,000 '[' was a RecursionError; a folder or FIFO named as a profile is refused unread
    (the FIFO no longer blocks the open)."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    (tmp_path / "folder.json").mkdir()
    os.mkfifo(tmp_path / "pipe.json")
    for name, message in (("deep", "is nested 100,000 levels deep"), ("folder", "is a folder, not a regular file"),
                          ("pipe", "is a named pipe (FIFO), not a regular file")):
        path = tmp_path / f"{name}.json"
        assert main(["cost", "--checkpoint", TOY, "--profile", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"cost profile {path} {message}" in err, err[:300]
