"""Top Hessian eigenvalue per group: FairLin's Lanczos vs PyHessian's power iteration, same model and samples.

For every group of the digits test split (shipped ResNet18 width 16), both compute lambda_max of the
Hessian of the group's mean cross-entropy (eval mode, gradient graph built once per group). A reference
value comes from Lanczos run to tol 1e-10. Each method runs at the same ``tol`` values (PyHessian: relative
change between power iterations; ours: relative error bound of the top Ritz value); the script prints the
best-of-``--repeats`` time summed over the groups, the Hessian-vector products, the largest relative
error against the reference, and PyHessian's time over ours. Needs ``pyhessian==0.1`` (dev requirement).
Run from the repository root: ``python -m benchmarks.bench_hessian`` (about a minute on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.checkpoints import load_dataset_for
from fairlin_core.metrics.hessian import HessianOperator, top_eigenvalues
from benchmarks.timing import best_time

CHECKPOINT = Path(__file__).resolve().parent.parent / "checkpoints" / "digits_resnet18.safetensors"
pyhessian = importlib.import_module("pyhessian.hessian")  # the module (the package re-exports the class)


class CountingPyHessian:
    """Counts PyHessian's Hessian-vector products by wrapping its module-level function."""

    def __init__(self) -> None:
        self.count = 0
        self.original = pyhessian.hessian_vector_product

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self.original(*args, **kwargs)


def run_ours(model, groups, tol):
    values, hvps = [], 0
    for x, y in groups:
        operator = HessianOperator(model, x, y)
        values.append(top_eigenvalues(operator, 1, tol=tol, max_steps=100)[0][0])
        hvps += operator.hvp_count
    return np.array(values), hvps


def run_pyhessian(model, groups, tol, counter):
    counter.count = 0
    values = []
    for x, y in groups:
        torch.manual_seed(0)
        top, _ = pyhessian.hessian(model, nn.CrossEntropyLoss(), data=(x, y), cuda=False).eigenvalues(
            maxIter=100, tol=tol)
        model.zero_grad(set_to_none=True)  # PyHessian leaves create_graph gradients in .grad
        values.append(top[0])
    return np.array(values), counter.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tols", default="1e-3,1e-4", help="comma-separated tolerances (default 1e-3,1e-4)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    checkpoint = load_checkpoint(CHECKPOINT)
    bundle = load_dataset_for(checkpoint.sidecar)
    model, split = checkpoint.model.eval(), bundle.splits["test"]
    groups = [(split.x[split.group == a], split.y[split.group == a]) for a in range(len(bundle.group_names))]
    counter = CountingPyHessian()
    pyhessian.hessian_vector_product = counter
    reference, _ = run_ours(model, groups, 1e-10)
    print(f"model {checkpoint.spec.name} {checkpoint.spec.options}; digits test, {len(groups)} groups "
          f"({min(len(g[1]) for g in groups)}-{max(len(g[1]) for g in groups)} samples); {torch.get_num_threads()} "
          f"threads; lambda_max from {reference.min():.2f} to {reference.max():.2f}")
    run_ours(model, groups, 1e-3)  # warm-up
    for tol in (float(t) for t in args.tols.split(",")):
        rows = {}
        for label, fn in (("ours (Lanczos)", lambda: run_ours(model, groups, tol)),
                          ("PyHessian (power)", lambda: run_pyhessian(model, groups, tol, counter))):
            seconds, (values, hvps) = best_time(fn, args.repeats)
            rows[label] = seconds
            error = float(np.max(np.abs(values - reference) / np.abs(reference)))
            print(f"tol {tol:.0e}  {label:18s} {seconds:7.3f} s  {hvps:4d} HVPs  max rel. error {error:.1e}")
        print(f"tol {tol:.0e}  ratio PyHessian / ours: {rows['PyHessian (power)'] / rows['ours (Lanczos)']:.2f}")


if __name__ == "__main__":
    main()
