"""Shared test constants and fixtures. The layout mirrors the package (tests/<wing>/test_*.py); tests
import the constants with ``from conftest import DIGITS, TOY, ...``. Markers (pyproject.toml): ``slow``
(more than ~20 s on 2 cores) and ``browser`` (Playwright + Debian chromium)."""

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
DIGITS = str(REPO / "checkpoints" / "digits_resnet18.safetensors")  # the shipped digits ResNet18 (width 16)
TOY = str(REPO / "checkpoints" / "toy2d_mlp.safetensors")  # the shipped toy2d MLP (2 x 16)
SECRET = "root:x:0:0:TOP-SECRET-FIRST-LINE"  # the first line of a file no message may quote


def job_config(checkpoint: str, method: str, budget, **fields):
    """A linearize JobConfig from the flat fields of its JSON form (recipe keys beside checkpoint, dataset and
    data_root, as run stores keep them), e.g. ``job_config(TOY, "random", 0.5, finetune={"epochs": 0})``."""
    from fairlin_core.jobs import JobConfig
    return JobConfig.from_dict({"checkpoint": checkpoint, "method": method, "budget": budget, **fields})


def copy_checkpoint(folder: Path, change=None, source: str = TOY) -> Path:
    """A copy of a shipped checkpoint in ``folder`` whose sidecar ``change(sidecar)`` edited in place."""
    folder.mkdir(parents=True, exist_ok=True)
    weights = folder / "model.safetensors"
    shutil.copyfile(source, weights)
    sidecar = json.loads(Path(source).with_suffix(".json").read_text())
    if change is not None:
        change(sidecar)
    weights.with_suffix(".json").write_text(json.dumps(sidecar))
    return weights


def write_images(root: Path, n: int = 12) -> Path:
    """A ``folder`` dataset: n small PNGs in two classes and two groups, listed in labels.csv."""
    (root / "imgs").mkdir(parents=True)
    lines = ["path,label,group"]
    for i in range(n):
        Image.new("RGB", (6, 6), (20 * i, 0, 0)).save(root / "imgs" / f"{i}.png")
        lines.append(f"imgs/{i}.png,{i % 2},{i // 2 % 2}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def _cifar_batch(rng: np.random.Generator, n: int) -> dict:
    return {b"batch_label": b"testing batch", b"labels": [i % 10 for i in range(n)],
            b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
            b"filenames": [f"img_{i}.png".encode() for i in range(n)]}


def write_cifar(root: Path, n: int = 20) -> dict[str, dict]:
    """CIFAR-10 in its standard layout under ``root``: six batches of ``n`` random images (labels i % 10) and a
    batches.meta naming the classes c0..c9; returns the batches by file name."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {name: _cifar_batch(rng, n) for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]}
    for index, (name, batch) in enumerate(batches.items()):
        with open(folder / name, "wb") as handle:  # protocol 2 like the real files, and the modern default
            pickle.dump(batch, handle, protocol=2 if index % 2 else pickle.DEFAULT_PROTOCOL)
    meta = {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": n}
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return batches


def _py2_str(text: bytes) -> bytes:
    """A Python 2 ``str`` in a pickle (SHORT_BINSTRING): bytes when unpickled with ``encoding="bytes"``."""
    return b"U" + bytes([len(text)]) + text


def cifar_bomb(entries: int = 250_000_000) -> bytes:
    """A CIFAR-10 python batch as Python 2 cPickle writes it (protocol 2: b"data", b"labels", b"batch_label",
    b"filenames"), whose b"data" is numpy's own array reduce with an object dtype and ``entries`` entries: 167
    bytes that make numpy allocate ``entries`` pointers (2 GB for the default) before anything can check them."""
    dtype = (b"cnumpy\ndtype\n" + _py2_str(b"O8") + b"K\x00K\x01\x87R"  # numpy.dtype('O8', 0, 1)
             + b"(K\x03" + _py2_str(b"|") + b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK?tb")  # its BUILD state
    array = (b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85" + _py2_str(b"b") + b"\x87R"
             + b"(K\x01J" + entries.to_bytes(4, "little") + b"\x85" + dtype + b"\x89]tb")  # (1, (N,), O, False, [])
    return (b"\x80\x02}(" + _py2_str(b"data") + array + _py2_str(b"labels") + b"]" + _py2_str(b"batch_label")
            + _py2_str(b"x") + _py2_str(b"filenames") + b"]u.")


@pytest.fixture(scope="session")
def digits_checkpoint():
    """The shipped digits base checkpoint, loaded once (treat as read-only)."""
    from fairlin_core.checkpoints import load_checkpoint
    return load_checkpoint(DIGITS)


@pytest.fixture(scope="session")
def toy_checkpoint():
    """The shipped toy2d base checkpoint, loaded once (treat as read-only)."""
    from fairlin_core.checkpoints import load_checkpoint
    return load_checkpoint(TOY)


def without_dac_override(argv):
    """``argv`` run so that file permissions apply even to root (setpriv drops CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all", "--", *argv]


def run_cli(capsys, *argv):
    """Run ``fairlin ARGV`` in this process (arguments made strings); returns (exit code, stdout, stderr)."""
    from fairlin_core.cli import main
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def snapshot(root):
    """Every file under ``root`` with its size and modification time (to prove nothing there changed)."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}
