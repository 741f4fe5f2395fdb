"""Model zoo: exact ReLU accounting, DeepReDuce counts, activation semantics, spec validation."""

import pytest
import torch

from fairlin_core.errors import FairLinError, ModelError
from fairlin_core.linearizers import DeepReduceConfig, apply_deepreduce
from fairlin_core.models import (LinearizableReLU, activation_sites, build_model, get_masks, relu_count,
                                 resolve_spec, set_masks, site_table, total_sites)


def resnet(name="resnet18", shape=(3, 32, 32), **options):
    return build_model(resolve_spec(name, 10, shape, **options))


def test_full_resnet_counts_match_reference():
    assert relu_count(resnet("resnet18")) == 491_520
    assert relu_count(resnet("resnet34")) == 901_120


def test_resnet18_per_stage_counts():
    table = site_table(resnet("resnet18"))
    per_stage = table.groupby("stage")["relu_count"].sum().to_dict()
    assert per_stage == {1: 4 * 65_536, 2: 4 * 32_768, 3: 4 * 16_384, 4: 4 * 8_192}
    assert (table.groupby("stage").size() == 4).all()
    assert set(table["role"]) == {"inner", "output"}


@pytest.mark.parametrize("cull,thin,expected", [
    ((), False, 491_520), ((1,), False, 229_376), ((1,), True, 114_688),
    ((1, 4), False, 196_608), ((1, 2), False, 98_304), ((1, 2), True, 49_152)])
def test_deepreduce_counts(cull, thin, expected):
    model = resnet("resnet18")
    apply_deepreduce(model, DeepReduceConfig(cull, thin))
    assert relu_count(model) == expected


@pytest.mark.parametrize("cull,thin,expected", [((1,), False, 57_344), ((1,), True, 28_672), ((1, 2), True, 12_288)])
def test_deepreduce_stride2_stem_divides_by_four(cull, thin, expected):
    model = resnet("resnet18", stem_stride=2)
    apply_deepreduce(model, DeepReduceConfig(cull, thin))
    assert relu_count(model) == expected


def test_deepreduce_refuses_non_resnets_and_unknown_stages():
    with pytest.raises(FairLinError, match="ResNets"):
        apply_deepreduce(build_model(resolve_spec("mlp", 2, (2,))), DeepReduceConfig((1,)))
    with pytest.raises(FairLinError, match="stage"):
        apply_deepreduce(resnet("resnet18", width=8), DeepReduceConfig((5,)))


@pytest.mark.parametrize("name,shape,options", [
    ("resnet18", (1, 8, 8), {"width": 8}), ("resnet34", (3, 32, 32), {"width": 4}),
    ("vgg19_bn", (1, 8, 8), {"width": 4}), ("vgg19_bn", (3, 32, 32), {"width": 4}),
    ("wrn22_8", (3, 16, 16), {"width": 1}), ("mlp", (2,), {"depth": 3, "width": 8}), ("mlp", (1, 8, 8), {})])
def test_every_model_runs_and_counts_its_sites(name, shape, options):
    model = build_model(resolve_spec(name, 7, shape, **options)).eval()
    logits = model(torch.randn(3, *shape))
    assert logits.shape == (3, 7)
    assert relu_count(model) == total_sites(model) > 0
    for _, site in activation_sites(model):
        assert site.alpha.shape == site.shape and not site.alpha.requires_grad


def test_resnet_sites_on_8x8_input_have_the_right_shapes():
    sites = dict(activation_sites(resnet("resnet18", shape=(1, 8, 8), width=16)))
    assert sites["layer1.0.relu1"].shape == (16, 8, 8)
    assert sites["layer4.1.relu2"].shape == (128, 1, 1)
    assert relu_count(resnet("resnet18", shape=(1, 8, 8), width=16)) == 4 * (1024 + 512 + 256 + 128)


def test_activation_interpolates_between_relu_and_identity():
    site = LinearizableReLU((5,))
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 2.0]])
    assert torch.equal(site(x), torch.relu(x))
    with torch.no_grad():
        site.alpha.zero_()
    assert torch.equal(site(x), x)
    with torch.no_grad():
        site.alpha.fill_(0.25)
    assert torch.allclose(site(x), 0.25 * torch.relu(x) + 0.75 * x)
    assert site.relu_count() == 5
    with torch.no_grad():
        site.alpha.fill_(0.01)
    assert site.relu_count() == 0


def test_masks_round_trip_and_reject_mismatches():
    model = resnet("resnet18", shape=(1, 8, 8), width=4)
    masks = get_masks(model)
    masks["layer1.0.relu1"].zero_()
    set_masks(model, masks)
    assert relu_count(model) == total_sites(model) - masks["layer1.0.relu1"].numel()
    del masks["layer1.0.relu1"]
    with pytest.raises(ValueError, match="missing"):
        set_masks(model, masks)


def test_spec_validation_messages():
    with pytest.raises(ModelError, match="unknown model 'resnet50'"):
        resolve_spec("resnet50", 10, (3, 32, 32))
    with pytest.raises(ModelError, match="does not take option"):
        resolve_spec("resnet18", 10, (3, 32, 32), depth=3)
    with pytest.raises(ModelError, match="positive integer"):
        resolve_spec("mlp", 2, (2,), width=0)
    with pytest.raises(ModelError, match="stem_stride"):
        resolve_spec("resnet18", 10, (3, 32, 32), stem_stride=3)
    with pytest.raises(ModelError, match="image input"):
        resolve_spec("resnet18", 2, (2,))
