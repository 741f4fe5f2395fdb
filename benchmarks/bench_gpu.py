"""Training throughput of FairLin's SNL and finetune epochs against a plain PyTorch loop (issue 15).

Writes synthetic CIFAR-10 in the real ``cifar-10-batches-py`` layout, loads it through FairLin's loader,
and times on the same ResNet18, batch size and precision: (a) a plain training loop (cross-entropy, SGD),
(b) SNL epochs (:func:`~fairlin_core.linearizers.snl.snl_trajectory`, masks learning, budget never reached),
(c) finetune epochs (:func:`~fairlin_core.finetune.finetune`, KD). An epoch is timed from one epoch-end
progress report to the next, so each includes FairLin's per-epoch validation pass (it counts against (b) and
(c)); the once-per-call setup (teacher logits, copies) is printed apart, as whole calls. Rounds run
(a), (b), (c) in turn and each loop keeps its fastest epoch, so a shared machine's drift hits all three
alike. Prints images/s and the time ratios (b)/(a), (c)/(a) per epoch (goal: 1.10 on a GPU, 1.15 on CPU)
and per whole call. GPU: width 64, 50,000 + 10,000 images, wall time. CPU: width 16, 5,000 + 1,000, one
thread (``--threads``), and the ratios of CPU time (``time.process_time``) beside those of wall time: on a
shared machine other processes stretch wall time at random, while the CPU time a loop spends is its own.

    python benchmarks/bench_gpu.py [--precision fp32|bf16] [--batch-size 128] [--epochs 3] [--rounds 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from fairlin_core.data import load_dataset
from fairlin_core.finetune import FinetuneConfig, finetune
from fairlin_core.linearizers import SNLConfig
from fairlin_core.linearizers.snl import snl_trajectory
from fairlin_core.models import build_model, resolve_spec
from fairlin_core.runtime import PRECISIONS, Progress, autocast, batch_indices, default_device, for_training

try:
    from benchmarks.cifar_layout import write_cifar_layout
except ImportError:  # run as a script from benchmarks/
    from cifar_layout import write_cifar_layout


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class EpochClock:
    """Progress callback: wall and CPU time of every epoch-end report (CUDA synchronised first)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.ticks = device, []

    def __call__(self, progress: Progress) -> None:
        _sync(self.device)
        self.ticks.append((time.perf_counter(), time.process_time()))

    def fastest_epoch(self) -> tuple[float, float]:
        """(wall, CPU) seconds of the fastest epoch between two reports (the first epoch carries the setup)."""
        spans = [(b[0] - a[0], b[1] - a[1]) for a, b in zip(self.ticks, self.ticks[1:])]
        return min(w for w, _ in spans), min(c for _, c in spans)


def _now() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _since(start: tuple[float, float]) -> tuple[float, float]:
    wall, cpu = _now()
    return wall - start[0], cpu - start[1]


def plain_epochs(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, epochs: int,
                 device: torch.device, precision: str) -> tuple[tuple[float, float], tuple[float, float]]:
    """((wall, CPU) seconds of the whole call, of its fastest epoch) of the textbook loop (data resident on the
    device, like FairLin's)."""
    call = _now()
    model = for_training(model.to(device), device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    generator = torch.Generator().manual_seed(0)
    x, y = x.to(device), y.to(device)
    model.train()
    clock = EpochClock(device)
    clock(Progress(0.0, "start"))
    for _ in range(epochs):
        for index in batch_indices(len(x), batch_size, generator):
            index = index.to(device)
            with autocast(device, precision):
                loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        clock(Progress(0.0, "epoch"))
    return _since(call), clock.fastest_epoch()


def timed(run: Callable[[EpochClock], object], device: torch.device) -> tuple[tuple[float, float], tuple[float, float]]:
    """((wall, CPU) seconds of the whole call, of its fastest epoch) of ``run(progress)``."""
    clock = EpochClock(device)
    _sync(device)
    start = _now()
    run(clock)
    _sync(device)
    return _since(start), clock.fastest_epoch()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per call (at least 2: the first has the setup)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of (a), (b), (c) after one warm-up round")
    parser.add_argument("--threads", type=int, default=1, help="CPU only: torch threads (default 1)")
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (epochs are timed between epoch-end reports)")
    device = default_device()
    gpu = device.type == "cuda"
    if not gpu:
        torch.set_num_threads(args.threads)
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
          f"{args.batch_size}, {args.precision}, {args.epochs} epochs per call, {args.rounds} rounds"
          + ("" if gpu else f", {torch.get_num_threads()} CPU thread(s)"))

    loops = {
        "(a) plain PyTorch loop": lambda epochs: plain_epochs(build_model(spec), split.x, split.y, args.batch_size,
                                                              epochs, device, args.precision),
        "(b) FairLin SNL epoch": lambda epochs: timed(lambda clock: snl_trajectory(
            base, bundle, [1], SNLConfig(epochs=epochs, batch_size=args.batch_size), device=device,
            precision=args.precision, progress=clock), device),
        "(c) FairLin finetune epoch": lambda epochs: timed(lambda clock: finetune(
            base, base, bundle, FinetuneConfig(epochs=epochs, batch_size=args.batch_size), device=device,
            precision=args.precision, progress=clock), device),
    }
    for run in loops.values():  # warm-up round
        run(2)
    inf = (float("inf"), float("inf"))
    best = {label: (inf, inf) for label in loops}
    for _ in range(args.rounds):
        for label, run in loops.items():
            call, epoch = run(args.epochs)
            best[label] = tuple(tuple(map(min, old, new)) for old, new in zip(best[label], (call, epoch)))
    clocks = ("wall",) if gpu else ("wall", "CPU")
    for label, (call, epoch) in best.items():
        print(f"{label:28s} {n / epoch[0]:8.1f} images/s per epoch, wall ({epoch[0]:.2f} s"
              + ("" if gpu else f"; CPU {epoch[1]:.2f} s") + f"); whole call of {args.epochs} epochs {call[0]:.2f} s")
    (plain_call, plain), (snl_call, snl), (tune_call, tune) = best.values()
    goal = 1.10 if gpu else 1.15
    for k, clock in enumerate(clocks):
        print(f"per epoch, {clock} time: ratio (b)/(a) = {snl[k] / plain[k]:.3f}   ratio (c)/(a) = "
              f"{tune[k] / plain[k]:.3f}   (goal <= {goal})")
        print(f"whole calls (setup included), {clock} time: ratio (b)/(a) = {snl_call[k] / plain_call[k]:.3f}   "
              f"ratio (c)/(a) = {tune_call[k] / plain_call[k]:.3f}")

if __name__ == "__main__":
    main()
