"""Importing a ~45 MB ResNet18 checkpoint (SNL layout, 32x32, masks at a 10% budget) with
:func:`fairlin_core.checkpoints.importers.import_weights` against a bare
``torch.load(weights_only=True)`` + ``load_state_dict`` of the same file into an already built model, in one
run (best of several); and the import's peak memory above the process's resident set just before it,
measured in a fresh child process (peak RSS reset through /proc/self/clear_refs), against the file size;
also after one forward pass, when every memory-mapped weight has been paged in.

    python benchmarks/bench_import_checkpoint.py [--repeats 5]
    python -m benchmarks.bench_import_checkpoint

Targets (issue 14): time ratio <= 3x, peak memory <= 2x the file size.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from benchmarks.timing import best_time
from fairlin_core.checkpoints.importers import import_weights
from fairlin_core.models import build_model, resolve_spec

TIME_TARGET, MEMORY_TARGET = 3.0, 2.0
REPO = Path(__file__).resolve().parents[1]


def write_snl_checkpoint(path: Path, keep: float = 0.1) -> int:
    """A ResNet18 (width 64, 10 classes) in SNL's ResNet_IN layout; returns the ReLU count SNL's rule gives."""
    model = build_model(resolve_spec("resnet18", 10, (3, 32, 32)))
    generator = torch.Generator().manual_seed(0)
    state, count = {}, 0
    for key, value in model.state_dict().items():
        if key.endswith(".alpha"):
            mask = (torch.rand(value.shape, generator=generator) < keep).float().unsqueeze(0)
            count += int((mask > 1e-2).sum())
            key = key.replace("relu1.alpha", "alpha1.alphas").replace("relu2.alpha", "alpha2.alphas")
            value = mask
        state[key] = value
    torch.save({"arch": "resnet18_in", "state_dict": state}, path)
    return count


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def child_peak(path: str) -> None:
    """In a fresh process: peak RSS growth (bytes) of one import, printed as JSON."""
    build_model(resolve_spec("resnet18", 10, (3, 32, 32)))  # warm the allocator and lazy imports
    before = _rss_kib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM (peak RSS) to the current RSS
    imported = import_weights(path, "snl", "resnet18", (3, 32, 32), 10)
    peak = _rss_kib("VmHWM")
    with torch.no_grad():
        imported.model(torch.zeros(1, 3, 32, 32))  # touches every weight: the mapped pages come in
    used = _rss_kib("VmHWM")
    print(json.dumps({"peak_growth": (peak - before) * 1024, "after_forward": (used - before) * 1024,
                      "relu_count": imported.record["relu_count"]}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_peak(args.child)
        return
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="fairlin-bench-import-") as temp:
        path = Path(temp) / "snl_best_checkpoint_resnet18_in_cifar10_budget.pth.tar"
        reference = write_snl_checkpoint(path)
        size = path.stat().st_size
        target = build_model(resolve_spec("resnet18", 10, (3, 32, 32)))
        target_state_names = {k.replace("relu1.alpha", "alpha1.alphas").replace("relu2.alpha", "alpha2.alphas"): k
                              for k in target.state_dict()}

        def bare():
            state = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
            target.load_state_dict({target_state_names[k]: v.reshape(target.state_dict()[target_state_names[k]].shape)
                                    for k, v in state.items()})

        baseline, _ = best_time(bare, args.repeats, warm_up=True)
        imported_time, imported = best_time(lambda: import_weights(path, "snl", "resnet18", (3, 32, 32), 10),
                                            args.repeats, warm_up=True)
        child = subprocess.run([sys.executable, "-m", "benchmarks.bench_import_checkpoint", "--child", str(path)],
                               cwd=REPO, capture_output=True, text=True, check=True,
                               env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
        memory = json.loads(child.stdout.strip().splitlines()[-1])
    ratio, memory_ratio = imported_time / baseline, memory["peak_growth"] / size
    print(f"file {size / 2**20:.1f} MiB; ReLU count {imported.record['relu_count']} (SNL rule {reference})")
    print(f"bare torch.load + load_state_dict {baseline * 1e3:.0f} ms; import_weights {imported_time * 1e3:.0f} ms; "
          f"ratio {ratio:.2f}x (target <= {TIME_TARGET}x) {'OK' if ratio <= TIME_TARGET else 'MISSED'}")
    print(f"peak memory above baseline {memory['peak_growth'] / 2**20:.1f} MiB = {memory_ratio:.2f}x the file "
          f"(target <= {MEMORY_TARGET}x) {'OK' if memory_ratio <= MEMORY_TARGET else 'MISSED'}; after one forward "
          f"pass (every weight paged in from the mapped file) {memory['after_forward'] / 2**20:.1f} MiB = "
          f"{memory['after_forward'] / size:.2f}x")


if __name__ == "__main__":
    main()
