"""SNL mask overhead: time of one SNL epoch / one plain training epoch of the same network, same batches.

Both loops use Adam on the shipped digits ResNet18 (width 16) over the same shuffled batches of
the training split. The plain epoch is cross-entropy training with masks frozen; the SNL epoch adds
what SNL needs: trainable masks, the KD term against cached teacher logits, the L1 penalty, mask
clamping and the per-batch ReLU count. Prints the median over repeats and the ratio (target <= 1.15).

    python benchmarks/bench_snl_overhead.py [--repeats 5] [--copies 4]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.checkpoints import load_dataset_for
from fairlin_core.finetune import teacher_logits
from fairlin_core.linearizers.snl import snl_step
from fairlin_core.models import activation_sites, relu_count
from fairlin_core.runtime import batch_indices


def plain_epoch(model, x, y, batches, optimizer):
    model.train()
    for index in batches:
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def snl_epoch(model, x, y, targets, batches, optimizer, masks, lam=3e-3):
    model.train()
    for index in batches:
        snl_step(model, optimizer, masks, x[index], y[index], targets[index], lam, 4.0)
        relu_count(model)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--copies", type=int, default=4, help="epoch = this many passes over the digits train split")
    args = parser.parse_args()
    torch.manual_seed(0)
    checkpoint = load_checkpoint(SHIPPED_CHECKPOINTS / "digits_resnet18.safetensors")
    train = load_dataset_for(checkpoint.sidecar).splits["train"]
    x, y = train.x.repeat(args.copies, 1, 1, 1), train.y.repeat(args.copies)
    batches = list(batch_indices(len(x), 64, torch.Generator().manual_seed(0)))
    targets = teacher_logits(checkpoint.model, x, torch.device("cpu"))

    plain_model = copy.deepcopy(checkpoint.model)
    plain_opt = torch.optim.Adam([p for p in plain_model.parameters() if p.requires_grad], lr=1e-3)
    snl_model = copy.deepcopy(checkpoint.model)
    masks = [site.alpha for _, site in activation_sites(snl_model)]
    for alpha in masks:
        alpha.requires_grad_(True)
    ids = {id(a) for a in masks}
    snl_opt = torch.optim.Adam([{"params": [p for p in snl_model.parameters() if id(p) not in ids], "lr": 1e-3},
                                {"params": masks, "lr": 2e-2}])
    plain_epoch(plain_model, x, y, batches, plain_opt)  # warm-up
    snl_epoch(snl_model, x, y, targets, batches, snl_opt, masks)
    plain_times, snl_times = [], []
    for _ in range(args.repeats):  # interleaved so drifts in machine load hit both alike
        start = time.perf_counter()
        plain_epoch(plain_model, x, y, batches, plain_opt)
        plain_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        snl_epoch(snl_model, x, y, targets, batches, snl_opt, masks)
        snl_times.append(time.perf_counter() - start)
    plain, snl = statistics.median(plain_times), statistics.median(snl_times)
    print(f"threads {torch.get_num_threads()}, {len(batches)} batches of 64, median of {args.repeats}")
    print(f"plain epoch  {plain:.3f} s")
    print(f"SNL epoch    {snl:.3f} s")
    print(f"ratio SNL/plain = {snl / plain:.3f} (target <= 1.15)")


if __name__ == "__main__":
    main()
