"""Instrumenting any nn.Module (torch.fx): torchvision models and a custom CNN with functional ReLUs; model-code
checkpoints (a factory recorded in the sidecar) and the linearizers on instrumented models."""

import sys

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from fairlin_core.errors import FairLinError, ModelError
from fairlin_core.linearizers.deepreduce import student_spec
from fairlin_core.linearizers.options import DeepReduceConfig
from fairlin_core.models import activation_sites, instrument, relu_count, set_stage_masks, site_table
from fairlin_core.models.instrumentation import has_stages

X = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))


class SmallCNN(nn.Module):
    """ReLUs only as calls in forward: F.relu, an in-place torch.relu_ whose input is read again, Tensor.relu."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        y = self.conv2(x)
        torch.relu_(y)
        y = (y + x).relu()
        return self.head(F.adaptive_avg_pool2d(y, 1).flatten(1))


def test_torchvision_resnet18_sites_and_deepreduce_stages():
    source = torchvision.models.resnet18(weights=None, num_classes=10).eval()
    model = instrument(source, (3, 32, 32)).eval()
    report = model.fairlin_report
    assert (len(report.sites), report.relu_count, report.other_activations) == (17, 47_104, {})
    assert torch.allclose(model(X), source(X), atol=1e-6)
    table = site_table(model)
    assert table.iloc[0]["site"] == "relu" and table.iloc[0]["stage"] == 0  # the stem ReLU counts
    assert (table.groupby("role").size().to_dict()) == {"inner": 9, "output": 8}  # stem + 8 after bn1; 8 post-add
    assert has_stages(model)
    set_stage_masks(model, cull=(1,), thin=False)
    assert relu_count(model) == 47_104 - 16_384


def test_custom_cnn_functional_and_inplace_relus():
    source = SmallCNN().eval()
    model = instrument(source, (3, 32, 32)).eval()
    assert list(model.fairlin_report.sites.values()) == [(8, 32, 32)] * 3
    assert torch.allclose(model(X), source(X), atol=1e-6)  # in place: the add reads the ReLU'd y
    with torch.no_grad():
        for module in model.modules():
            if hasattr(module, "alpha"):
                module.alpha.zero_()
    assert not torch.allclose(model(X), source(X), atol=1e-3)  # the sites really replaced the ReLUs
    assert not has_stages(model)


class ReluSpellingsCNN(nn.Module):
    """The ReLUs written as clamps, maxima with zero and thresholds (and in place), beside lookalikes that are not
    ReLUs. ``linear=True`` computes the same network with every ReLU spelling replaced by the identity."""

    def __init__(self, linear: bool = False):
        super().__init__()
        self.linear = linear
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.threshold = nn.Threshold(0, 0)
        self.head = nn.Linear(4, 10)

    def forward(self, x):
        x = self.conv(x)
        relu = (lambda f: x) if self.linear else (lambda f: f())
        ys = [relu(lambda: x.clamp(min=0)), relu(lambda: torch.clamp(x, min=0)), relu(lambda: torch.clamp(x, 0)),
              relu(lambda: x.clamp_min(0)), relu(lambda: torch.clip(x, min=0.0)),
              relu(lambda: torch.maximum(x, torch.zeros_like(x))), relu(lambda: torch.max(torch.tensor(0.0), x)),
              relu(lambda: F.threshold(x, 0, 0)), relu(lambda: self.threshold(x))]
        z = x * 1.0
        if not self.linear:
            z.clamp_(min=0)  # in place: the next line must read the ReLU'd z
        ys.append(z + 0.0)
        others = [x.clamp(0, 6), torch.clamp(x, min=-1), torch.maximum(x, 0.5 * x), F.threshold(x, 0.5, 0), x.abs()]
        y = torch.stack(ys + others).sum(0) + x.max(1, keepdim=True)[0]  # x.max(dim) is a reduction, not a ReLU
        return self.head(F.adaptive_avg_pool2d(y, 1).flatten(1))


def test_relus_written_as_clamp_maximum_and_threshold_are_sites():
    source, twin = ReluSpellingsCNN().eval(), ReluSpellingsCNN(linear=True).eval()
    twin.load_state_dict(source.state_dict())
    model = instrument(source, (3, 8, 8)).eval()
    report = model.fairlin_report
    assert len(report.sites) == 10 and report.relu_count == 10 * 4 * 8 * 8  # counted by hand: 10 spellings
    assert report.other_activations == {"clamp": 2, "maximum": 1, "threshold": 1, "abs": 1}
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(model(x), source(x), atol=1e-5)
    with torch.no_grad():
        for _, site in activation_sites(model):
            site.alpha.zero_()
    assert torch.allclose(model(x), twin(x), atol=1e-5)  # every spelling became the identity at alpha 0
    assert not torch.allclose(twin(x), source(x), atol=1e-3)


class UserReluNet(nn.Module):
    """A user's CNN whose every ReLU is spelled another way (one spelling per layer, so each site has its own
    shape), with ReLU lookalikes on a side branch: clamp to [0, 6] (ReLU6-like), clamp at 0.5, clamp_max,
    threshold at 0.5, a minimum with zero, a maximum with a learned shift that starts at zero, and GELU."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.conv4, self.conv5 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.conv6, self.conv7 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(64, 32), nn.Linear(32, 10)
        self.register_buffer("zero", torch.zeros(()))
        self.shift = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        h = self.conv1(x).clamp(min=0)  # (8, 8, 8)
        h = torch.clamp(self.conv2(h), min=0)  # (8, 8, 8)
        h = torch.clamp_min(self.conv3(h), 0)  # (16, 4, 4)
        side = (h.clamp(min=0, max=6) + h.clamp(min=0.5) + torch.clamp_max(h, 1) + F.threshold(h, 0.5, 0)
                + torch.min(h, torch.zeros_like(h)) + torch.maximum(h, self.shift) + F.gelu(h))
        h = self.conv4(h + 0.1 * side)
        h = torch.maximum(h, torch.zeros_like(h))  # (16, 4, 4)
        h = torch.max(self.conv5(h), self.zero)  # (16, 4, 4)
        h = self.conv6(h)
        h = torch.maximum(h, torch.zeros(1, device=h.device))  # (16, 4, 4)
        h = F.threshold(self.conv7(h), 0, 0)  # (16, 4, 4)
        h = self.fc1(F.avg_pool2d(h, 2).flatten(1))
        h = torch.max(h, h.new_zeros(h.shape))  # (32,)
        return self.fc2(h)


def test_a_user_models_relu_spellings_are_counted_linearized_and_priced():
    import fairlin_core as fl
    source = UserReluNet().eval()
    model = instrument(source, (3, 8, 8)).eval()
    report = model.fairlin_report
    shapes = [(8, 8, 8)] * 2 + [(16, 4, 4)] * 5 + [(32,)]
    assert list(report.sites.values()) == shapes
    assert report.relu_count == relu_count(model) == 2 * 512 + 5 * 256 + 32  # 2,336, counted by hand
    assert report.other_activations == {"clamp": 3, "threshold": 1, "minimum": 1, "maximum": 1,
                                        "gelu": 1}
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(model(x), source(x))  # every site on: the same function, bit for bit
    assert fl.cost(model, input_shape=(3, 8, 8)).totals["relu_count"] == 2_336
    fc_site = dict(activation_sites(model))[list(report.sites)[-1]]
    with torch.no_grad():
        fc_site.alpha.zero_()  # linearize the fc ReLU: it becomes the identity and is no longer priced
        assert not torch.equal(model(x), source(x))
    assert relu_count(model) == fl.cost(model, input_shape=(3, 8, 8)).totals["relu_count"] == 2_336 - 32


def test_a_relu_of_a_relu_gets_a_site_each():
    source = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ReLU()).eval()
    model = instrument(source, (3, 8, 8)).eval()
    assert list(model.fairlin_report.sites.values()) == [(4, 8, 8)] * 2
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model(x), source(x))


def test_mobilenet_v2_reports_relu6_and_linearizers_refuse_it(digits_checkpoint):
    model = instrument(torchvision.models.mobilenet_v2(weights=None, num_classes=10), (3, 32, 32))
    assert model.fairlin_report.sites == {} and model.fairlin_report.other_activations == {"ReLU6": 35}
    from fairlin_core.linearizers.api import prepare_students
    with pytest.raises(FairLinError, match=r"snl refused: the model has no ReLU.*ReLU6 x35.*ReLU sites only"):
        prepare_students(model, digits_checkpoint.spec, digits_checkpoint.dataset(), "snl", [1])


@pytest.mark.slow
def test_vgg11_bn_sites():
    source = torchvision.models.vgg11_bn(weights=None, num_classes=10).eval()
    model = instrument(source, (3, 32, 32)).eval()
    report = model.fairlin_report
    assert len(report.sites) == 10 and report.relu_count == 159_744  # 8 conv ReLUs + 2 classifier ReLUs of 4096
    assert torch.allclose(model(X), source(X), atol=1e-5)
    assert not has_stages(model)


def test_untraceable_forward_is_refused_with_the_construct():
    class Branchy(nn.Module):
        def forward(self, x):
            return F.relu(x) if x.sum() > 0 else x

    with pytest.raises(ModelError, match="torch.fx cannot trace it .*control flow"):
        instrument(Branchy(), (3, 4, 4))


FACTORY = '''
import torch.nn as nn, torch.nn.functional as F


class Net(nn.Module):
    def __init__(self, channels=4, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, channels, 3, padding=1)
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.head(F.adaptive_avg_pool2d(F.relu(self.conv(x)), 1).flatten(1))


def build(channels=4, num_classes=10):
    return Net(channels, num_classes)
'''


@pytest.fixture
def model_code(tmp_path, monkeypatch):
    """A user package on the path, and its factory trusted (as with --trust-model-code usermodels:build)."""
    (tmp_path / "usermodels.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("FAIRLIN_TRUSTED_MODEL_CODE", "usermodels:build")
    yield tmp_path
    sys.modules.pop("usermodels", None)


def test_model_code_checkpoint_reloads_and_linearizes(model_code, monkeypatch):
    import fairlin_core as fl
    from fairlin_core.checkpoints import load_checkpoint
    from fairlin_core.checkpoints.importers import import_checkpoint
    sys.path.insert(0, str(model_code))
    import usermodels
    source = usermodels.build(channels=6)
    torch.save(source.state_dict(), model_code / "net.pt")
    options = {"factory": "usermodels:build", "kwargs": {"channels": 6}}
    checkpoint = import_checkpoint(model_code / "net.pt", "state-dict", "code", "digits", model_code / "net",
                                   model_options=options)
    assert checkpoint.sidecar["model"]["options"] == options and checkpoint.relu_count == 6 * 8 * 8
    reloaded = load_checkpoint(checkpoint.path)
    x = torch.randn(2, 1, 8, 8)
    assert torch.allclose(reloaded.model(x), source.eval()(x), atol=1e-6)
    data = reloaded.dataset()
    for method in ("random", "snl"):
        student = fl.linearize(reloaded, method, 100, data=data, finetune_epochs=1, snl_epochs=2, seed=0)
        assert student.relu_count <= 100
    with pytest.raises(FairLinError, match="DeepReDuce needs ResNet stages"):
        student_spec(reloaded.spec, DeepReduceConfig())
    monkeypatch.setenv("FAIRLIN_TRUSTED_MODEL_CODE", "othermodels:build")  # trusting another factory is not enough
    with pytest.raises(FairLinError, match="built by user code usermodels:build, which runs only when you trust it"):
        load_checkpoint(checkpoint.path)
    monkeypatch.setenv("FAIRLIN_TRUSTED_MODEL_CODE", "usermodels:build")
    sys.modules.pop("usermodels")
    sys.path.remove(str(model_code))
    monkeypatch.syspath_prepend(str(model_code / "elsewhere"))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(model_code)])
    with pytest.raises(FairLinError, match=r"model code usermodels:build cannot be imported \(ModuleNotFoundError"):
        load_checkpoint(checkpoint.path)


def test_deepreduce_configurations_of_the_imagenet_stem_resnet():
    from fairlin_core.linearizers.deepreduce import configuration_counts
    from fairlin_core.models import resolve_spec
    spec = resolve_spec("resnet18", 10, (3, 32, 32), stem="imagenet")
    counts = {(c.cull, c.thin, c.stem_stride): n for c, n in configuration_counts(spec)}
    assert counts[((), False, 1)] == 47_104 and counts[((1,), False, 1)] == 47_104 - 16_384  # the stem ReLU stays
    assert all(stride == 1 for _, _, stride in counts)
    with pytest.raises(FairLinError, match="stride-2 stem needs the CIFAR stem"):
        student_spec(spec, DeepReduceConfig(stem_stride=2))


def test_the_cli_runs_model_code_only_for_a_factory_the_user_names(model_code, monkeypatch, tmp_path, capsys):
    """A downloaded checkpoint's sidecar can name any factory (e.g. os:system): the CLI never runs it unless the
    user names that factory with --trust-model-code."""
    from fairlin_core.checkpoints.importers import import_checkpoint
    from fairlin_core.cli import main
    import usermodels
    torch.save(usermodels.build(channels=6).state_dict(), model_code / "net.pt")
    checkpoint = import_checkpoint(model_code / "net.pt", "state-dict", "code", "digits", model_code / "net",
                                   model_options={"factory": "usermodels:build", "kwargs": {"channels": 6}})
    monkeypatch.delenv("FAIRLIN_TRUSTED_MODEL_CODE")
    assert main(["evaluate", "--checkpoint", str(checkpoint.path), "--json"]) == 2
    err = capsys.readouterr().err
    assert "--trust-model-code usermodels:build" in err and len(err.strip().splitlines()) == 1
    assert main(["evaluate", "--checkpoint", str(checkpoint.path), "--trust-model-code", "usermodels:build",
                 "--json"]) == 0
    assert '"relu_count": 384' in capsys.readouterr().out
