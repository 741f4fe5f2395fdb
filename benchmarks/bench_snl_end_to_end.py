"""End to end: linearize the shipped digits model to 10% of its ReLUs with SNL, finetune included.

Runs the same engine call as ``python -m fairlin_core linearize --method snl --budget 0.1`` with the
default options and prints the wall time against the 3-minute target (2 CPU cores), measured
alongside the base model's own training time on the same machine in the same run as a reference.

    python benchmarks/bench_snl_end_to_end.py
"""

from __future__ import annotations

import time

import torch

from fairlin_core.train import train_base
from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS
from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.checkpoints import load_dataset_for
from fairlin_core.linearizers import linearize

TARGET_SECONDS = 180.0


def main() -> None:
    checkpoint = load_checkpoint(SHIPPED_CHECKPOINTS / "digits_resnet18.safetensors")
    bundle = load_dataset_for(checkpoint.sidecar)
    start = time.perf_counter()
    train_base(bundle, "resnet18", model_options={"width": 16}, epochs=40, seed=0)
    base_seconds = time.perf_counter() - start
    start = time.perf_counter()
    result = linearize(checkpoint.model, checkpoint.spec, bundle, "snl", 0.1, seed=0)
    seconds = time.perf_counter() - start
    snl_epochs = int((result.history["stage"] == "snl").sum())
    print(f"threads {torch.get_num_threads()}, device {next(result.model.parameters()).device}")
    print(f"base training (40 epochs):        {base_seconds:.1f} s")
    print(f"SNL to 10% + finetune ({snl_epochs} SNL epochs): {seconds:.1f} s, {result.relu_count} ReLUs, "
          f"test accuracy {result.evaluations['finetuned']['test']['overall_accuracy']:.4f}")
    print(f"ratio to the {TARGET_SECONDS:.0f} s target = {seconds / TARGET_SECONDS:.3f} (target < 1); "
          f"ratio to base training = {seconds / base_seconds:.2f}")


if __name__ == "__main__":
    main()
