"""Importing checkpoints in the layouts researchers bring: each format against its real source architecture
(torchvision's models, and the SNL reference ResNet_IN re-written here from its published key names and
forward order), the ReLU counts SNL's rule gives, and the refusals (unsafe pickles, wrong layouts)."""

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from fairlin_core.checkpoints.importers import (ensure_checkpoint, import_checkpoint, import_weights, read_weights)
from fairlin_core.errors import CheckpointError
from fairlin_core.models import build_model, relu_count, resolve_spec

SNL_THRESHOLD = 1e-2


class LearnableAlpha(nn.Module):
    """SNL's mask: ``alphas`` of shape (1, C, H, W), y = relu(x) * a + (1 - a) * x."""

    def __init__(self, channels, size):
        super().__init__()
        self.alphas = nn.Parameter(torch.ones(1, channels, size, size))

    def forward(self, x):
        return F.relu(x) * self.alphas + (1 - self.alphas) * x


class SNLBlock(nn.Module):
    def __init__(self, in_planes, planes, stride, size):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.alpha1 = LearnableAlpha(planes, size)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        self.alpha2 = LearnableAlpha(planes, size)

    def forward(self, x):
        out = self.alpha1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.alpha2(out + self.shortcut(x))


class SNLResNetIN(nn.Module):
    """SNL's ResNet_IN on 32x32: 3x3 stem conv1 + bn1 (no stem ReLU), blocks, avg_pool2d(4), head ``linear``."""

    def __init__(self, blocks, num_classes=10, width=64):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        in_planes, size = width, 32
        for index, count in enumerate(blocks):
            planes, layer = width * 2 ** index, []
            for block in range(count):
                stride = 2 if index > 0 and block == 0 else 1
                size //= stride
                layer.append(SNLBlock(in_planes, planes, stride, size))
                in_planes = planes
            setattr(self, f"layer{index + 1}", nn.Sequential(*layer))
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(F.avg_pool2d(out, 4).flatten(1))


class CulledResNet(SNLResNetIN):
    """The paper repository's DeepReDuce student: the CIFAR ResNet without masks, culled stages with no ReLU,
    thinned blocks without the post-add ReLU."""

    def __init__(self, cull, thin, width=16):
        super().__init__([2, 2, 2, 2], width=width)
        for name, module in list(self.named_modules()):
            if isinstance(module, SNLBlock):
                stage = int(name[len("layer")])
                module.alpha1 = nn.Identity() if stage in cull else nn.ReLU()
                module.alpha2 = nn.Identity() if stage in cull or thin else nn.ReLU()


def _randomise_bn(model, seed=0):
    """Non-trivial running statistics so eval-mode logits depend on every buffer."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
    return model.eval()


def _snl_masks(model, keep, seed):
    """Masks as SNL leaves them before binarising: ``keep`` share above the threshold, the rest at 0.004.
    Returns the count SNL's rule (alpha > 1e-2) gives."""
    generator = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LearnableAlpha):
                values = torch.rand(module.alphas.shape, generator=generator)
                module.alphas.copy_(torch.where(values < keep, values / keep, torch.full_like(values, 0.004)))
                count += int((module.alphas > SNL_THRESHOLD).sum())
    return count


def _binarise(model):
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, LearnableAlpha):
                module.alphas.copy_((module.alphas > SNL_THRESHOLD).float())


X32 = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def test_snl_layout_imports_with_the_reference_relu_count_and_logits(tmp_path):
    source = _randomise_bn(SNLResNetIN([2, 2, 2, 2]))
    full = import_weights(_save(tmp_path / "best_checkpoint.pth.tar", source, "state_dict"), "snl", "resnet18",
                          (3, 32, 32), 10)
    assert not full.linearized and relu_count(full.model) == 491_520
    counts = {}
    for keep in (0.5, 0.1, 0.01):
        reference = _snl_masks(source, keep, seed=int(keep * 100))
        path = _save(tmp_path / f"snl_best_checkpoint_resnet18_in_cifar10_{reference}.pth.tar", source, "state_dict",
                     prefix="module.")
        imported = import_weights(path, "snl", "resnet18", (3, 32, 32), 10)
        counts[keep] = (reference, imported.record["relu_count"])
        assert imported.linearized and imported.record["relu_count"] == relu_count(imported.model) == reference
        assert imported.record["stripped_prefix"] == "module." and imported.record["container"] == ["state_dict"]
        _binarise(source)  # what SNL does before finetuning and saving: then the logits agree exactly
        assert torch.allclose(imported.model(X32), source(X32), atol=1e-5)
    print("SNL ReLU counts (reference rule, imported):", counts)


def test_torchvision_resnets_import_with_the_imagenet_stem(tmp_path):
    for arch, count in (("resnet18", 47_104), ("resnet34", 72_704)):
        source = _randomise_bn(getattr(torchvision.models, arch)(weights=None, num_classes=10))
        path = tmp_path / f"{arch}.pth"
        torch.save(source.state_dict(), path)
        imported = import_weights(path, "torchvision", arch, (3, 32, 32), 10)
        assert imported.spec.options["stem"] == "imagenet"
        assert relu_count(imported.model) == count  # the stem ReLU (64 x 16 x 16) counts
        assert torch.allclose(imported.model(X32), source(X32), atol=1e-5)
    with pytest.raises(CheckpointError, match="not a snl checkpoint of resnet18.*missing"):
        import_weights(tmp_path / "resnet18.pth", "snl", "resnet18", (3, 32, 32), 10)


def test_deepreduce_layout_imports_its_configuration_count(tmp_path):
    for cull, thin, expected in (((1, 2), False, 24_576), ((1,), True, 28_672)):  # width 16 = 1/4 of 98,304 / 28,672
        source = _randomise_bn(CulledResNet(cull, thin))
        path = tmp_path / "deepreduce.pth"
        torch.save({"model": source.state_dict(), "model_arch": "resnet18"}, path)
        imported = import_weights(path, "deepreduce", "resnet18", (3, 32, 32), 10,
                                  format_options={"cull": list(cull), "thin": thin})
        assert imported.record["relu_count"] == expected
        assert imported.record["source_entries"] == {"model_arch": "resnet18"}
        assert torch.allclose(imported.model(X32), source(X32), atol=1e-5)


def test_state_dict_zoo_model_in_every_container_and_file_kind(tmp_path):
    from safetensors.torch import save_file
    spec = resolve_spec("resnet18", 10, (1, 8, 8), width=8)
    source = _randomise_bn(build_model(spec))
    plain = {k: v for k, v in source.state_dict().items() if not k.endswith(".alpha")}
    x = torch.randn(3, 1, 8, 8)
    torch.save({"net": plain, "epoch": 7}, tmp_path / "a.pt")
    torch.save(plain, tmp_path / "b.bin", _use_new_zipfile_serialization=False)  # legacy: not memory-mappable
    save_file(plain, tmp_path / "c.safetensors")
    for name in ("a.pt", "b.bin", "c.safetensors"):
        imported = import_weights(tmp_path / name, "state-dict", "resnet18", (1, 8, 8), 10)
        assert torch.allclose(imported.model(x), source(x), atol=1e-5), name
    assert imported.record["sha256"] and imported.record["format"] == "state-dict"


def test_a_reduce_payload_never_runs_and_the_global_is_named(tmp_path):
    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "extra": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"needs the global io\.open, which weights-only loading refuses"):
        read_weights(path)
    assert not marker.exists()
    import pickle
    pickle.loads(pickle.dumps(Payload()))  # control: unpickled any other way, the payload does run
    assert marker.exists()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(CheckpointError, match="not an importable checkpoint"):
        read_weights(tmp_path / "notes.txt")


def test_import_writes_a_sidecar_record_and_audit_imports_on_the_fly(tmp_path):
    spec = resolve_spec("resnet18", 10, (1, 8, 8), width=8)
    source = build_model(spec)
    torch.save({"state_dict": source.state_dict()}, tmp_path / "mine.pth.tar")
    args = {"fmt": "state-dict", "arch": "resnet18", "dataset": "digits"}
    checkpoint = import_checkpoint(tmp_path / "mine.pth.tar", out=tmp_path / "mine.safetensors", **args)
    record = checkpoint.sidecar["imported_from"]
    assert checkpoint.sidecar["kind"] == "base" and record["source"] == "mine.pth.tar" and len(record["sha256"]) == 64
    assert checkpoint.dataset().name == "digits"
    first = ensure_checkpoint(tmp_path / "mine.pth.tar", tmp_path / "store", **args)
    assert first.exists() and ensure_checkpoint(tmp_path / "mine.pth.tar", tmp_path / "store", **args) == first
    assert ensure_checkpoint(checkpoint.path, tmp_path / "store") == checkpoint.path
    with pytest.raises(CheckpointError, match="give --format, --arch"):
        ensure_checkpoint(tmp_path / "mine.pth.tar", tmp_path / "store")


def _save(path, model, container, prefix=""):
    torch.save({"arch": "resnet18_in", container: {prefix + k: v for k, v in model.state_dict().items()},
                "optimizer": {"state": {}, "param_groups": [{"lr": 0.001}]}}, path)
    return path



TOY_IMPORT = ["--format", "state-dict", "--arch", "mlp", "--width", "16", "--dataset", "toy2d"]  # the shipped toy MLP


def _toy_source(folder):
    """The shipped toy MLP's state dict as ``folder/toy.pth`` (what import-checkpoint reads with TOY_IMPORT)."""
    from fairlin_core.checkpoints import load_checkpoint
    from conftest import TOY
    torch.save(load_checkpoint(TOY).model.state_dict(), folder / "toy.pth")
    return folder / "toy.pth"


def test_import_refuses_an_existing_checkpoint_before_reading_the_source(tmp_path, capsys, monkeypatch):
    """import-checkpoint --out EXISTING (a copy of a shipped checkpoint) is refused by the output guard without
    --overwrite, before the source is torch.load-ed; the pair is kept byte for byte; --overwrite replaces it."""
    import fairlin_core as fl
    from fairlin_core.checkpoints import load_checkpoint
    from fairlin_core.errors import FairLinError
    from conftest import copy_checkpoint, run_cli
    source = _toy_source(tmp_path)
    target = copy_checkpoint(tmp_path / "shipped")
    before = (target.read_bytes(), target.with_suffix(".json").read_bytes())
    loads = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    code, out, err = run_cli(capsys, "import-checkpoint", source, *TOY_IMPORT, "--out", target)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "already exists there (model.json, model.safetensors)" in err and "--overwrite" in err
    with pytest.raises(FairLinError, match="already exists"):
        fl.import_checkpoint(source, "state-dict", "mlp", "toy2d", target, model_options={"width": 16})
    assert loads == [] and (target.read_bytes(), target.with_suffix(".json").read_bytes()) == before
    code, out, err = run_cli(capsys, "import-checkpoint", source, *TOY_IMPORT, "--out", target, "--overwrite")
    assert code == 0 and loads, err
    assert load_checkpoint(target).sidecar["imported_from"]["source"] == "toy.pth"
    replaced = fl.import_checkpoint(source, "state-dict", "mlp", "toy2d", target, model_options={"width": 16},
                                    overwrite=True)
    assert replaced.path == target and replaced.relu_count == 32


@pytest.mark.parametrize("case", ["under-a-file", "name-300", "not-utf8", "no-file-name"])
def test_import_checks_its_target_before_the_source(case, tmp_path, capsys):
    """A bad --out is the error, not the unreadable source: the target is checked before any import work."""
    from conftest import run_cli
    source = tmp_path / "broken.pth"
    source.write_bytes(b"not a torch.save file")
    (tmp_path / "plain.txt").write_text("x")
    out, expected = {"under-a-file": (tmp_path / "plain.txt" / "m.safetensors", "is a file, not a folder"),
                     "name-300": (tmp_path / ("m" * 300 + ".safetensors"), "too long for the file system"),
                     "not-utf8": (tmp_path / "\udcff.safetensors", "not valid UTF-8"),
                     "no-file-name": (".", "names no file")}[case]
    code, stdout, err = run_cli(capsys, "import-checkpoint", source, *TOY_IMPORT, "--out", out)
    assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1, err
    assert expected in err and "torch.save" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.pth", "plain.txt"]


def test_import_without_the_dataset_files_evaluates_nothing_and_the_model_still_counts(tmp_path, capsys,
                                                                                      monkeypatch):
    """A torchvision ResNet18 imported for CIFAR-10 under an empty data root: exit 0, the sidecar has the dataset's
    name, shape and names from the registry and says its files were absent and nothing was evaluated (no accuracy);
    relu-count, cost and instrument work on it; linearize and audit refuse with the missing file. With the (tiny)
    files in place the import reads them, as before (the class names come from batches.meta)."""
    import json
    import fairlin_core as fl
    from fairlin_core.checkpoints import load_checkpoint
    from fairlin_core.data.cifar10 import STANDARD_NAMES
    from conftest import run_cli, write_cifar
    source = _randomise_bn(torchvision.models.resnet18(weights=None, num_classes=10))
    torch.save(source.state_dict(), tmp_path / "r18.pth")
    root = tmp_path / "data"
    root.mkdir()
    monkeypatch.setenv("FAIRLIN_DATA_ROOT", str(root))
    out = tmp_path / "r18.safetensors"
    argv = ["import-checkpoint", tmp_path / "r18.pth", "--format", "torchvision", "--arch", "resnet18",
            "--dataset", "cifar10", "--out", out]
    code, stdout, err = run_cli(capsys, *argv)
    assert code == 0, err
    missing = f"missing {root / 'cifar-10-batches-py' / 'data_batch_1'}"
    assert f"note: the dataset's files are absent ({missing}): nothing was evaluated" in stdout
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["model"]["input_shape"] == [3, 32, 32] and sidecar["model"]["num_classes"] == 10
    reference = sidecar["dataset"]
    assert reference["name"] == "cifar10" and reference["class_names"] == reference["group_names"] == STANDARD_NAMES
    assert reference["options"]["major_fraction"] == 0.9 and reference["options"]["seed"] == 0
    assert sidecar["imported_from"]["dataset_files"].startswith(f"absent ({missing}): nothing was evaluated")
    assert not {"evaluation", "evaluations", "training", "metrics"} & set(sidecar)
    checkpoint = load_checkpoint(out)
    assert torch.allclose(checkpoint.model(X32), source(X32), atol=1e-5)
    code, stdout, err = run_cli(capsys, "relu-count", "--checkpoint", out)
    assert code == 0 and "ReLU count: 47104" in stdout, err
    code, stdout, err = run_cli(capsys, "cost", "--checkpoint", out)
    assert code == 0 and "47,104 of 47,104 ReLUs" in stdout, err
    assert fl.instrument(checkpoint.model, checkpoint.spec.input_shape).fairlin_report.relu_count == 47_104
    for command in (["linearize", "--checkpoint", out, "--method", "random", "--budget", "100", "--out",
                     tmp_path / "lin"], ["audit", "--base", out, "--linearized", out]):
        code, stdout, err = run_cli(capsys, *command)
        assert code == 2 and len(err.strip().splitlines()) == 1 and f"cannot load CIFAR-10: {missing}" in err, err
    write_cifar(root)
    code, stdout, err = run_cli(capsys, *argv, "--overwrite")
    assert code == 0 and "note:" not in stdout, err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["imported_from"]["dataset_files"] == "read"
    assert sidecar["dataset"]["class_names"] == [f"c{i}" for i in range(10)]
    assert load_checkpoint(out).dataset().name == "cifar10"


def test_import_for_svhn_without_files_and_a_folder_dataset_still_needs_its_files(tmp_path):
    """SVHN's shape and digits are the registry's without its .mat files; a ``folder`` dataset's shape and classes
    are only in its files, so importing for it without them is the missing-files error, as before."""
    from fairlin_core.errors import DatasetError
    spec = resolve_spec("resnet18", 10, (3, 32, 32), width=8)
    torch.save(build_model(spec).state_dict(), tmp_path / "small.pth")
    checkpoint = import_checkpoint(tmp_path / "small.pth", "state-dict", "resnet18", "svhn", tmp_path / "s.safetensors",
                                   data_root=tmp_path, model_options={"width": 8})
    assert checkpoint.sidecar["dataset"]["class_names"] == [str(d) for d in range(10)]
    assert checkpoint.sidecar["imported_from"]["dataset_files"].startswith(f"absent (missing {tmp_path}")
    with pytest.raises(DatasetError, match="folder"):
        import_checkpoint(tmp_path / "small.pth", "state-dict", "resnet18", "folder", tmp_path / "f.safetensors",
                          data_root=tmp_path, model_options={"width": 8})
