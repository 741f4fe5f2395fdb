"""Group gradient norms: FairLin's group-partitioned pass vs per-group backward passes, same model and data.

All three compute, for every group a, ||grad of the mean loss of group a over the split|| (eval mode):

- ours: ``group_gradient_norms`` -- each sample is forwarded and backpropagated once (split partitioned
  by group; possible because eval-mode samples do not interact).
- per-group loop (the reference code's way): forward each batch once, then one backward pass over the
  whole batch per group present in it (``retain_graph``).
- vmapped backward: per batch, the vector of per-group summed losses is backpropagated with one-hot
  cotangents in one call (``torch.autograd.grad(..., is_grads_batched=True)``) -- batched, but still
  one backward over the whole batch per group.

Prints the best of ``--repeats`` wall times, the ratios against ours, and the largest relative
difference between the results. Run from the repository root: ``python -m benchmarks.bench_grad_norms``
(about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.checkpoints import load_dataset_for
from fairlin_core.metrics.gradients import group_gradient_norms, weight_parameters
from benchmarks.timing import best_time

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "digits_resnet18.safetensors"
DEVICE = torch.device("cpu")


def per_group_loop(model, split, groups, batch_size):
    params = [p for _, p in weight_parameters(model)]
    sums = [[torch.zeros_like(p) for p in params] for _ in range(groups)]
    for start in range(0, len(split), batch_size):
        x, y, g = (t[start:start + batch_size] for t in (split.x, split.y, split.group))
        losses = F.cross_entropy(model(x), y, reduction="none")
        for group in g.unique().tolist():
            grads = torch.autograd.grad(losses[g == group].sum(), params, retain_graph=True)
            for total, grad in zip(sums[group], grads):
                total.add_(grad)
    counts = torch.bincount(split.group, minlength=groups)
    return torch.stack([torch.sqrt(sum(((s / counts[a]) ** 2).sum() for s in sums[a])) for a in range(groups)])


def vmapped_backward(model, split, groups, batch_size):
    params = [p for _, p in weight_parameters(model)]
    sums = [torch.zeros(groups, *p.shape) for p in params]
    eye = torch.eye(groups)
    for start in range(0, len(split), batch_size):
        x, y, g = (t[start:start + batch_size] for t in (split.x, split.y, split.group))
        losses = F.cross_entropy(model(x), y, reduction="none")
        per_group = torch.zeros(groups).index_add(0, g, losses)
        grads = torch.autograd.grad(per_group, params, grad_outputs=eye, is_grads_batched=True)
        for total, grad in zip(sums, grads):
            total.add_(grad)
    counts = torch.bincount(split.group, minlength=groups).float()
    return torch.sqrt(sum((s.flatten(1) ** 2).sum(1) for s in sums)) / counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    checkpoint = load_checkpoint(CHECKPOINT)
    bundle = load_dataset_for(checkpoint.sidecar)
    model, split, names = checkpoint.model.eval(), bundle.splits[args.split], bundle.group_names
    weights = sum(p.numel() for _, p in weight_parameters(model))
    print(f"model {checkpoint.spec.name} {checkpoint.spec.options}, {weights} weights; digits {args.split}: "
          f"{len(split)} samples, {len(names)} groups; batch {args.batch_size}; {torch.get_num_threads()} threads")
    ours_s, ours = best_time(lambda: torch.tensor(group_gradient_norms(
        model, split, names, batch_size=args.batch_size, device=DEVICE)["grad_norm"].to_numpy()),
        args.repeats, warm_up=True)
    print(f"ours (group-partitioned)      {ours_s:8.3f} s")
    for label, fn in (("per-group loop (reference)", per_group_loop), ("vmapped backward", vmapped_backward)):
        seconds, result = best_time(lambda: fn(model, split, len(names), args.batch_size), args.repeats,
                                    warm_up=True)
        difference = float(((result.double() - ours.double()).abs() / ours.double()).max())
        print(f"{label:29s} {seconds:8.3f} s   ratio {seconds / ours_s:5.2f}x ours   max rel. diff {difference:.1e}")


if __name__ == "__main__":
    main()
