"""SNL's device-side budget snapshots (the GPU path, read every k batches) give exactly the snapshots of
reading the count after every batch; precision and layout helpers leave CPU runs unchanged."""

import pytest
import torch

from fairlin_core.linearizers import SNLConfig
from fairlin_core.linearizers.snl import snl_trajectory
from fairlin_core.models import build_model, resolve_spec
from fairlin_core.runtime import DeviceRows, autocast, for_training


def test_device_snapshots_read_every_k_batches_equal_the_per_batch_reads(toy_checkpoint):
    bundle = toy_checkpoint.dataset()
    budgets = [20, 12, 8, 4]
    config = SNLConfig(epochs=4, batch_size=64)
    cpu = torch.device("cpu")
    exact, history = snl_trajectory(toy_checkpoint.model, bundle, budgets, config, device=cpu, read_every=1)
    lazy, lazy_history = snl_trajectory(toy_checkpoint.model, bundle, budgets, config, device=cpu, read_every=7)
    assert any(s.reached for s in exact) and not all(s.reached for s in exact)  # some budgets met mid-epoch
    for a, b in zip(exact, lazy):
        assert (a.budget, a.epoch, a.relu_count, a.reached) == (b.budget, b.epoch, b.relu_count, b.reached)
        assert all(torch.equal(a.state[k], b.state[k]) for k in a.state)
    assert history.equals(lazy_history)


def test_bf16_and_channels_last_apply_only_on_cuda(toy_checkpoint):
    cpu = torch.device("cpu")
    with autocast(cpu, "bf16"):
        assert toy_checkpoint.model(torch.zeros(2, 2)).dtype == torch.float32
    convolutional = build_model(resolve_spec("resnet18", 10, (3, 8, 8), width=4))  # channels_last would apply
    assert for_training(convolutional, cpu) is convolutional
    assert all(p.is_contiguous() for p in convolutional.parameters())  # not converted to channels_last on CPU
    with pytest.raises(ValueError, match="precision"):
        autocast(cpu, "fp16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_channels_last_and_bf16_on_cuda():
    cuda = torch.device("cuda")
    model = for_training(build_model(resolve_spec("resnet18", 10, (3, 8, 8), width=4)).to(cuda), cuda)
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) and torch.backends.cudnn.benchmark
    with autocast(cuda, "bf16"):
        assert model(torch.zeros(2, 3, 8, 8, device=cuda)).dtype == torch.bfloat16


def test_device_rows_on_cpu_serve_the_tensors_themselves():
    x, y = torch.arange(24.0).view(6, 4), torch.arange(6)
    rows = DeviceRows(x, y, device=torch.device("cpu"))
    assert rows.resident and rows.tensors[0] is x and len(rows) == 6
    xb, yb = rows.rows(torch.tensor([4, 1]))
    assert torch.equal(xb, x[[4, 1]]) and yb.tolist() == [4, 1]
