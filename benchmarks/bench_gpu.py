"""Training throughput of FairLin's SNL and finetune epochs against a plain PyTorch loop (issue 15).

Writes synthetic CIFAR-10 in the real ``cifar-10-batches-py`` layout, loads it through FairLin's loader,
and times on the same ResNet18, batch size and precision: (a) a plain training loop (cross-entropy, SGD),
(b) one SNL epoch (:func:`~fairlin_core.linearize.snl.snl_trajectory`, masks learning, budget never reached),
(c) one finetune epoch (:func:`~fairlin_core.finetune.finetune`, KD). Prints images/s of each and the time
ratios (b)/(a), (c)/(a) (goal: 1.10 on a GPU, 1.15 on CPU). The validation pass every epoch of (b) and (c)
counts against them. GPU: width 64, 50,000 + 10,000 images; CPU: width 16, 5,000 + 1,000.

    python benchmarks/bench_gpu.py [--precision fp32|bf16] [--batch-size 128] [--epochs 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from fairlin_core.data import load_dataset
from fairlin_core.finetune import FinetuneConfig, finetune
from fairlin_core.linearize import SNLConfig
from fairlin_core.linearize.snl import snl_trajectory
from fairlin_core.models import build_model, resolve_spec
from fairlin_core.runtime import autocast, batch_indices, default_device, for_training

try:
    from benchmarks.cifar_layout import write_cifar_layout
except ImportError:  # run as a script from benchmarks/
    from cifar_layout import write_cifar_layout


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def plain_epochs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int,
                 device: torch.device, precision: str) -> float:
    """Seconds of ``epochs`` epochs of the textbook loop (data resident on the device, like FairLin's)."""
    model = for_training(model.to(device), device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    x, y = x.to(device), y.to(device)
    model.train()
    _sync(device)
    start = time.perf_counter()
    for _ in range(epochs):
        for index in batch_indices(len(x), batch_size, generator):
            index = index.to(device)
            with autocast(device, precision):
                loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed per loop (after one warm-up epoch)")
    args = parser.parse_args()
    device = default_device()
    gpu = device.type == "cuda"
    width, train, test = (64, 50_000, 10_000) if gpu else (16, 5_000, 1_000)
    with tempfile.TemporaryDirectory() as root:
        write_cifar_layout(Path(root), train, test)
        bundle = load_dataset("cifar10", data_root=root, seed=0)
    split = bundle.splits["train"]
    spec = resolve_spec("resnet18", bundle.num_classes, tuple(bundle.input_shape), width=width)
    torch.manual_seed(0)
    base = build_model(spec).eval()
    n = len(split)
    print(f"device {device}, ResNet18 width {width}, {n} training images (of {train} written), batch "
          f"{args.batch_size}, {args.precision}, {args.epochs} timed epochs")

    plain_epochs(build_model(spec), split.x, split.y, args.batch_size, 1, device, args.precision)  # warm-up
    plain = plain_epochs(build_model(spec), split.x, split.y, args.batch_size, args.epochs, device, args.precision)

    snl_config = SNLConfig(epochs=args.epochs, batch_size=args.batch_size)
    snl_trajectory(base, bundle, [1], SNLConfig(epochs=1, batch_size=args.batch_size), device=device,
                   precision=args.precision)  # warm-up
    _sync(device)
    start = time.perf_counter()
    snl_trajectory(base, bundle, [1], snl_config, device=device, precision=args.precision)
    _sync(device)
    snl = time.perf_counter() - start

    tune = FinetuneConfig(epochs=args.epochs, batch_size=args.batch_size)
    _sync(device)
    start = time.perf_counter()
    finetune(base, base, bundle, tune, device=device, precision=args.precision)
    _sync(device)
    tuned = time.perf_counter() - start
    plain = min(plain, plain_epochs(build_model(spec), split.x, split.y, args.batch_size, args.epochs, device,
                                    args.precision))  # best of before and after: a shared machine drifts

    images = n * args.epochs
    for label, seconds in (("(a) plain PyTorch loop", plain), ("(b) FairLin SNL epoch", snl),
                           ("(c) FairLin finetune epoch", tuned)):
        print(f"{label:28s} {images / seconds:10.1f} images/s  ({seconds:.2f} s)")
    goal = 1.10 if gpu else 1.15
    print(f"ratio (b)/(a) = {snl / plain:.3f}   ratio (c)/(a) = {tuned / plain:.3f}   (time; goal <= {goal})")


if __name__ == "__main__":
    main()
