"""Fuzz-style: malformed sidecars, flags and dataset trees through the CLI (``fairlin_core.cli.main`` in process).

Every case must exit 2 with exactly one line on stderr, no traceback, no quoted file contents, and change no
file of the repository's checkpoints/ and results/ (their mtimes are compared before and after). The bad
inputs are built in a temporary folder; the current directory and $FAIRLIN_DATA_ROOT point into it, so a
command's default store or data root is never the repository's.
"""

import json
import os
import pickle
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from conftest import REPO, SECRET, cifar_bomb, copy_checkpoint, write_images
from fairlin_core.cli import main

LONG = "x" * 100_000


def _sidecar_cases() -> dict:
    """id -> change(sidecar) of a copy of the shipped toy checkpoint (evaluated with ``evaluate``)."""
    def model(**fields):
        return lambda s: s["model"].update(fields)

    def options(**fields):
        return lambda s: s["model"]["options"].update(fields)

    def dataset(**fields):
        return lambda s: s.update(dataset={"name": "toy2d", **fields})

    folder = {"target": "label", "group": "group"}
    return {
        "width-1e9": options(width=10**9), "width-30000": options(width=30000), "depth-huge": options(depth=10**6),
        "width-text": options(width="16"), "width-negative": options(width=-16),
        "input-shape-negative": model(input_shape=[-2]), "input-shape-text": model(input_shape="2"),
        "input-shape-empty": model(input_shape=[]), "input-shape-huge": model(input_shape=[10**9]),
        "classes-zero": model(num_classes=0), "classes-huge": model(num_classes=10**9),
        "model-name-long": model(name=LONG), "model-not-object": lambda s: s.update(model=[]),
        "model-options-list": model(options=[1]),
        "mismatched-architecture": model(name="resnet18", input_shape=[3, 32, 32], options={"width": 256}),
        "dataset-options-list": dataset(options=["n", 5]), "dataset-options-text": dataset(options="n=5"),
        "dataset-seed-huge": dataset(options={"seed": 2**64}), "dataset-seed-negative": dataset(options={"seed": -1}),
        "dataset-n-huge": dataset(options={"n": 10**9}), "dataset-unknown-option": dataset(options={LONG: 1}),
        "dataset-target-number": dataset(target=7), "dataset-missing": lambda s: s.pop("dataset"),
        "dataset-name-long": lambda s: s.update(dataset={"name": LONG}),
        "dataset-class-names": dataset(class_names=["a"]),
        "folder-csv-absolute": lambda s: s.update(dataset={"name": "folder", "options": {"csv": "SECRETFILE"}, **folder}),
        "folder-root-dotdot": lambda s: s.update(dataset={"name": "folder", "options": {"root": ".."}, **folder}),
        "folder-root-symlink": lambda s: s.update(dataset={"name": "folder", "options": {"root": "escape"}, **folder}),
        "folder-image-size-huge": lambda s: s.update(dataset={"name": "folder", "options": {"image_size": 8000},
                                                             **folder}),
        "folder-root-number": lambda s: s.update(dataset={"name": "folder", "options": {"root": 3}, **folder}),
    }


# id -> (sidecar text, weights bytes) replacing the copy's files (None: keep)
RAW = {"not-json": ("{not json", None), "deep-json": ("[" * 100_000, None),
       "wrong-format": (json.dumps({"format": "other"}), None),
       "pickle": (None, b"\x80\x04\x95" + b"\x00" * 64), "truncated": (None, b"\x10")}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The temporary folder every case works in: data trees, broken checkpoints, a file of secrets."""
    top = tmp_path_factory.mktemp("fuzz")
    data = top / "data"
    secret = top / "secret.csv"
    secret.write_text(f"{SECRET}\n")
    write_images(data / "folder")
    (data / "folder" / "labels.csv").write_text(f"{SECRET}\nmore\n")  # any file where the labels CSV should be
    write_images(data / "tiny", n=2)  # two images: the validation split is empty
    (data / "escape").symlink_to(top, target_is_directory=True)
    (data / "UTKFace").mkdir()
    Image.new("RGB", (8, 8)).save(data / "UTKFace" / f"{'9' * 20}_0_0_20170101.jpg", format="JPEG")
    for name in ("train", "test"):
        scipy.io.savemat(data / f"{name}_32x32.mat", {"images": np.zeros((2, 2), np.uint8)})
    (data / "cifar-10-batches-py").mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (data / "cifar-10-batches-py" / name).write_text(SECRET)

    checkpoints = {}
    for case, change in _sidecar_cases().items():
        def edited(sidecar, change=change):
            change(sidecar)
            text = json.dumps(sidecar).replace("SECRETFILE", str(secret))
            sidecar.clear()
            sidecar.update(json.loads(text))
        checkpoints[case] = copy_checkpoint(top / "ckpt" / case, edited)
    for name, (sidecar, weights) in RAW.items():
        path = copy_checkpoint(top / "raw" / name)
        if sidecar is not None:
            path.with_suffix(".json").write_text(sidecar)
        if weights is not None:
            path.write_bytes(weights)
        checkpoints[name] = path
    _outputs_world(top)
    _weights_world(top)
    _files_world(top)
    _flags_world(top)
    _store_world(top)
    return {"top": top, "data": data, "checkpoints": checkpoints, "good": copy_checkpoint(top / "good")}


def _flag_cases(w) -> dict:
    good, out, data = str(w["good"]), str(w["top"] / "out"), str(w["data"])
    return {
        "relu-count-input-size-100000": ["relu-count", "--model", "resnet18", "--input-size", "100000"],
        "relu-count-input-size-zero": ["relu-count", "--model", "resnet18", "--input-size", "0"],
        "relu-count-width-1e9": ["relu-count", "--model", "mlp", "--input-size", "10", "--width", "1000000000"],
        "relu-count-too-big-together": ["relu-count", "--model", "resnet18", "--input-size", "1024"],
        "relu-count-classes-zero": ["relu-count", "--model", "mlp", "--input-size", "2", "--num-classes", "0"],
        "relu-count-channels-huge": ["relu-count", "--model", "vgg19_bn", "--input-size", "32", "--channels", "99999"],
        "relu-count-model-long": ["relu-count", "--model", LONG, "--input-size", "3"],
        "evaluate-checkpoint-name-300": ["evaluate", "--checkpoint", "c" * 300],
        "evaluate-checkpoint-folder-300": ["evaluate", "--checkpoint", "c" * 300 + "/m.safetensors"],
        "relu-count-width-text": ["relu-count", "--model", "mlp", "--input-size", "2", "--width", LONG],
        "dataset-info-seed-65-bits": ["dataset-info", "digits", "--seed", str(2**64)],
        "dataset-info-seed-negative": ["dataset-info", "digits", "--seed", "-1"],
        "dataset-info-name-long": ["dataset-info", LONG],
        "dataset-info-n-huge": ["dataset-info", "toy2d", "--dataset-option", "n=1000000000"],
        "dataset-info-image-size-8000": ["dataset-info", "folder", "--data-root", data, "--dataset-option",
                                         "root=tiny", "--dataset-option", "image_size=8000"],
        "dataset-info-option-long": ["dataset-info", "digits", "--dataset-option", f"{LONG}=1"],
        "toy-first-seed-negative": ["toy", "--first-seed", "-1"],
        "toy-first-seed-65-bits": ["toy", "--first-seed", str(2**64)],
        "toy-seeds-zero": ["toy", "--seeds", "0"],
        "toy-width-huge": ["toy", "--width", "100000", "--seeds", "1"],
        "toy-n-huge": ["toy", "--n", "1000000000", "--seeds", "1"],
        "compare-seed-negative": ["compare", "--checkpoint", good, "--method", "random", "--budgets", "4",
                                  "--seeds", "0,-1"],
        "compare-seed-65-bits": ["compare", "--checkpoint", good, "--method", "random", "--budgets", "4",
                                 "--seeds", str(2**64)],
        "linearize-seed-65-bits": ["linearize", "--checkpoint", good, "--method", "random", "--budget", "4",
                                   "--out", out, "--seed", str(2**64)],
        "linearize-data-seed-negative": ["linearize", "--checkpoint", good, "--method", "random", "--budget", "4",
                                         "--out", out, "--dataset", "toy2d", "--data-seed", "-2"],
        "sweep-seed-65-bits": ["sweep", "--checkpoint", good, "--budgets", "4", "--seeds", "99999999999999999999",
                               "--store", str(w["top"] / "store")],
        "sweep-seed-negative": ["sweep", "--checkpoint", good, "--budgets", "4", "--seeds", "-3",
                                "--store", str(w["top"] / "store")],
        "default-audit-seed-negative": ["default-audit", "--checkpoint", good, "--seeds", "-1", "--out", out],
        "audit-seed-65-bits": ["audit", "--base", good, "--linearized", good, "--seed", str(2**64)],
        "train-base-width-huge": ["train-base", "--dataset", "toy2d", "--model", "mlp", "--width", "100000",
                                  "--out", out + "/m"],
        "train-base-empty-validation": ["train-base", "--dataset", "folder", "--data-root", data, "--dataset-option",
                                        "root=tiny", "--model", "resnet18", "--width", "4", "--epochs", "1",
                                        "--out", out + "/tiny"],
        "train-base-seed-65-bits": ["train-base", "--dataset", "toy2d", "--model", "mlp", "--seed", str(2**64),
                                    "--out", out + "/m"],
    }


def _tree_cases(w) -> dict:
    data = str(w["data"])
    return {
        "folder-csv-is-another-file": ["dataset-info", "folder", "--data-root", data],
        "folder-csv-absolute-by-flag": ["dataset-info", "folder", "--data-root", data, "--dataset-option",
                                        f"csv={w['top'] / 'secret.csv'}"],
        "utkface-20-digit-age": ["dataset-info", "utkface", "--data-root", data],
        "svhn-wrong-variables": ["dataset-info", "svhn", "--data-root", data],
        "cifar10-not-pickles": ["dataset-info", "cifar10", "--data-root", data],
    }


def _outputs_world(top: Path) -> None:
    """top/outputs: the toy MLP's state dict as toy.pth (a valid import source), a copy of the shipped toy
    checkpoint (copy/model.safetensors) and a regular file (plain.txt) for outputs under it."""
    import torch
    from fairlin_core.checkpoints import load_checkpoint
    folder = top / "outputs"
    copy_checkpoint(folder / "copy")
    torch.save(load_checkpoint(folder / "copy" / "model.safetensors").model.state_dict(), folder / "toy.pth")
    (folder / "plain.txt").write_text("x")


def _outputs_cases(w) -> dict:
    """Outputs the guard refuses before any work: an existing checkpoint (a copy, and the repository's own) without
    --overwrite, 300-character names, names under a regular file, non-UTF-8 names (surrogates)."""
    folder, good = w["top"] / "outputs", str(w["good"])
    long, bad = "n" * 300, "\udcff\udcfe"
    imports = ["import-checkpoint", str(folder / "toy.pth"), "--format", "state-dict", "--arch", "mlp", "--width",
               "16", "--dataset", "toy2d", "--out"]
    linearize = ["linearize", "--checkpoint", good, "--method", "random", "--budget", "4", "--out"]
    train = ["train-base", "--dataset", "toy2d", "--model", "mlp", "--epochs", "1", "--out"]
    audit = ["default-audit", "--checkpoint", good, "--out"]
    return {
        "import-out-existing-copy": [*imports, str(folder / "copy" / "model.safetensors")],
        "import-out-existing-repo-checkpoint": [*imports, str(REPO / "checkpoints" / "toy2d_mlp.safetensors")],
        "import-out-name-300": [*imports, str(folder / f"{long}.safetensors")],
        "import-out-under-file": [*imports, str(folder / "plain.txt" / "m.safetensors")],
        "import-out-surrogates": [*imports, str(folder / f"{bad}.safetensors")],
        "import-out-no-file-name": [*imports, "."],
        "default-audit-out-name-300": [*audit, str(folder / long)],
        "default-audit-out-under-file": [*audit, str(folder / "plain.txt" / "audit")],
        "default-audit-out-surrogates": [*audit, str(folder / bad)],
        "linearize-out-name-300": [*linearize, str(folder / long)],
        "linearize-out-under-file": [*linearize, str(folder / "plain.txt" / "lin")],
        "linearize-out-surrogates": [*linearize, str(folder / bad)],
        "train-base-out-name-300": [*train, str(folder / f"{long}.safetensors")],
        "train-base-out-folder-300": [*train, str(folder / long / "m.safetensors")],
        "train-base-out-surrogates": [*train, str(folder / f"{bad}.safetensors")],
        "train-base-out-existing-copy": [*train, str(folder / "copy" / "model.safetensors")],
    }


# id -> (tensor of the toy MLP's state dict, change) of the bad state dicts _weights_world writes as top/weights/ID.pth
BAD_WEIGHTS = {"nan": ("layers.1.weight", lambda t: t.index_fill_(1, torch.tensor([0]), float("nan"))),
               "inf": ("layers.3.bias", lambda t: t.fill_(float("inf"))),
               "complex": ("layers.5.weight", lambda t: t.to(torch.complex64)),
               "mask-minus-5": ("layers.2.alpha", lambda t: t.fill_(-5.0)),
               "mask-nan": ("layers.4.alpha", lambda t: t.fill_(float("nan"))),
               "mask-1.5": ("layers.2.alpha", lambda t: t.fill_(1.5))}


def _weights_world(top: Path) -> None:
    """top/weights: the toy MLP's state dict with each BAD_WEIGHTS change (ID.pth), checkpoint copies with NaN
    weights and a mask of 1.5 (nan-copy/, mask-copy/), copies whose sidecar names a dataset their model cannot take
    (toy-digits/: the toy MLP with digits, digits-toy/: the digits ResNet with toy2d), a pickle needing posix.system
    built opcode by opcode (system.pth, its payload would create RAN) and a protocol-4 pickle (plain.pt)."""
    from safetensors.torch import save_file
    from fairlin_core.checkpoints import load_checkpoint
    folder = top / "weights"
    folder.mkdir()
    state = load_checkpoint(REPO / "checkpoints" / "toy2d_mlp.safetensors").model.state_dict()
    for case, (name, change) in BAD_WEIGHTS.items():
        torch.save({**state, name: change(state[name].clone())}, folder / f"{case}.pth")
    for case, (name, change) in (("nan-copy", BAD_WEIGHTS["nan"]), ("mask-copy", BAD_WEIGHTS["mask-1.5"])):
        save_file({**state, name: change(state[name].clone())}, copy_checkpoint(folder / case),
                  metadata={"format": "fairlin-checkpoint"})
    copy_checkpoint(folder / "toy-digits", lambda s: s.update(dataset={"name": "digits"}))
    copy_checkpoint(folder / "digits-toy", lambda s: s.update(dataset={"name": "toy2d"}),
                    source=str(REPO / "checkpoints" / "digits_resnet18.safetensors"))
    command = f"touch {folder / 'RAN'}".encode()
    (folder / "system.pth").write_bytes(b"\x80\x02cposix\nsystem\nX" + len(command).to_bytes(4, "little") + command
                                        + b"\x85R.")
    (folder / "plain.pt").write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))


def _weights_cases(w) -> dict:
    """Weights no model may hold, on import and on load; datasets a checkpoint's model cannot take; pickles needing a
    refused global (the posix.system payload must not run: its file RAN is checked by its own test)."""
    folder, good = w["top"] / "weights", str(w["good"])
    imports = ["--format", "state-dict", "--arch", "mlp", "--width", "16", "--dataset", "toy2d"]
    cases = {f"weights-import-{case}": ["import-checkpoint", str(folder / f"{case}.pth"), *imports, "--out",
                                        str(folder / "out" / case)] for case in BAD_WEIGHTS}
    nan, mask = str(folder / "nan-copy" / "model.safetensors"), str(folder / "mask-copy" / "model.safetensors")
    misfit, resnet = str(folder / "toy-digits" / "model.safetensors"), str(folder / "digits-toy" / "model.safetensors")
    return {
        **cases,
        "weights-evaluate-nan-copy": ["evaluate", "--checkpoint", nan],
        "weights-evaluate-mask-copy": ["evaluate", "--checkpoint", mask],
        "weights-audit-nan-copy": ["audit", "--base", good, "--linearized", nan, "--json"],
        "weights-linearize-mask-copy": ["linearize", "--checkpoint", mask, "--method", "random", "--budget", "4",
                                        "--out", str(folder / "out" / "lin")],
        "weights-audit-import-nan-on-the-fly": ["audit", "--base", good, "--linearized", str(folder / "nan.pth"),
                                                *imports, "--json"],
        "weights-evaluate-toy-mlp-with-digits": ["evaluate", "--checkpoint", misfit],
        "weights-evaluate-digits-resnet-with-toy2d": ["evaluate", "--checkpoint", resnet],
        "weights-audit-toy-mlp-with-digits": ["audit", "--base", misfit, "--linearized", misfit, "--json"],
        "weights-sweep-digits-resnet-with-toy2d": ["sweep", "--checkpoint", resnet, "--budgets", "100", "--seeds", "0",
                                                   "--store", str(w["top"] / "store")],
        "weights-import-pickle-posix-system": ["import-checkpoint", str(folder / "system.pth"), *imports, "--out",
                                               str(folder / "out" / "system")],
        "weights-import-pickle-protocol-4": ["import-checkpoint", str(folder / "plain.pt"), *imports, "--out",
                                             str(folder / "out" / "plain")],
    }


def _files_world(top: Path) -> None:
    """top/files: checkpoints whose sidecar or weights is a FIFO, a link to /dev/zero or a folder, a sidecar of
    1.1M ``{}`` (past the 1,000,000-value bound), a sidecar naming a folder root with a NUL byte, cost profiles
    100,000 ``[`` deep and a FIFO, a FIFO named as a .pth to import, and a data root (top/files/data) whose
    many/labels.csv has 200,001 rows and whose CIFAR-10 batches are the 167-byte bomb."""
    files = top / "files"
    makers = {"fifo": os.mkfifo, "zero": lambda path: path.symlink_to("/dev/zero"), "folder": Path.mkdir}
    for kind, make in makers.items():
        side = copy_checkpoint(files / f"sidecar-{kind}").with_suffix(".json")
        side.unlink()
        make(side)
    for kind in ("fifo", "zero"):
        weights = copy_checkpoint(files / f"weights-{kind}")
        weights.unlink()
        makers[kind](weights)
    copy_checkpoint(files / "million", lambda s: s.update(pad=[{}] * 1_100_000))
    copy_checkpoint(files / "nul", lambda s: s.update(dataset={"name": "folder", "options": {"root": "a\0b"},
                                                               "target": "label", "group": "group"}))
    (files / "deep.json").write_text("[" * 100_000)
    os.mkfifo(files / "pipe.json")
    os.mkfifo(files / "pipe.pth")
    rows = "\n".join(f"i/{i}.png,0,0" for i in range(200_001))
    (files / "data" / "many").mkdir(parents=True)
    (files / "data" / "many" / "labels.csv").write_text(f"path,label,group\n{rows}\n")
    (files / "data" / "cifar-10-batches-py").mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (files / "data" / "cifar-10-batches-py" / name).write_bytes(cifar_bomb())


def _files_cases(w) -> dict:
    """User files that are no regular files, JSON past its bounds (files and flags), a CSV past its row limit, the
    CIFAR-10 bomb and NUL bytes in paths: each one line, never a hang, gigabytes or a traceback."""
    files, good = w["top"] / "files", str(w["good"])
    data = str(files / "data")

    def evaluate(name):
        return ["evaluate", "--checkpoint", str(files / name / "model.safetensors"), "--data-root", data]
    imports = ["import-checkpoint", str(w["top"] / "outputs" / "toy.pth"), "--format", "state-dict", "--model-code",
               "m:f", "--dataset", "toy2d", "--out", str(w["top"] / "out" / "m.safetensors"), "--model-kwargs"]
    return {
        "files-sidecar-dev-zero": evaluate("sidecar-zero"), "files-sidecar-fifo": evaluate("sidecar-fifo"),
        "files-sidecar-folder": evaluate("sidecar-folder"), "files-weights-fifo": evaluate("weights-fifo"),
        "files-weights-dev-zero": evaluate("weights-zero"),
        "files-sweep-weights-fifo": ["sweep", "--checkpoint", str(files / "weights-fifo" / "model.safetensors"),
                                     "--budgets", "4", "--store", str(w["top"] / "store")],  # the job hash reads it
        "files-audit-sidecar-fifo": ["audit", "--base", str(files / "sidecar-fifo" / "model.safetensors"),
                                     "--linearized", good],
        "files-audit-import-fifo": ["audit", "--base", str(files / "pipe.pth"), "--linearized", good, "--format",
                                    "state-dict", "--arch", "mlp", "--width", "16", "--dataset", "toy2d"],
        "files-sidecar-million-empty-objects": evaluate("million"),
        "files-sidecar-folder-root-nul": evaluate("nul"),
        "files-dataset-option-root-nul": ["dataset-info", "folder", "--data-root", data, "--dataset-option",
                                          "root=a\0b"],
        "files-model-kwargs-deep": [*imports, "[" * 100_000],
        "files-model-kwargs-5000-digits": [*imports, '{"a": ' + "1" * 5000 + "}"],
        "files-dataset-option-deep": ["dataset-info", "toy2d", "--dataset-option", "n=" + "[" * 100_000],
        "files-cost-profile-deep": ["cost", "--checkpoint", good, "--profile", str(files / "deep.json")],
        "files-cost-profile-fifo": ["cost", "--checkpoint", good, "--profile", str(files / "pipe.json")],
        "files-folder-csv-200001-rows": ["dataset-info", "folder", "--data-root", data, "--dataset-option",
                                         "root=many"],
        "files-cifar10-bomb": ["dataset-info", "cifar10", "--data-root", data],
    }


def _flags_world(top: Path) -> None:
    """top/flags: the shipped delphi profile with a bandwidth of 0 (bandwidth0.json) and a state dict holding a sparse
    tensor (sparse.pth: torch warns while loading it, then the import refuses it)."""
    import torch
    from fairlin_core.costs.profiles import PROFILE_DIR
    folder = top / "flags"
    folder.mkdir()
    profile = json.loads((PROFILE_DIR / "delphi.json").read_text())
    profile["network"]["bandwidth_mbps"]["value"] = 0
    (folder / "bandwidth0.json").write_text(json.dumps(profile))
    torch.save({"layers.1.weight": torch.eye(16, 2).to_sparse()}, folder / "sparse.pth")


def _flags_cases(w) -> dict:
    """Run sizes past ``RUN_LIMITS`` (seeds, epochs, steps, runs), non-finite or out-of-range reals, options that are
    refused even where unused, 100,000-character echoes, a profile that would divide by zero, a torch warning on the
    way to a refusal."""
    good, out, folder = str(w["good"]), str(w["top"] / "out"), w["top"] / "flags"
    linearize = ["linearize", "--checkpoint", good, "--method", "random", "--budget", "4", "--out", out]
    compare = ["compare", "--checkpoint", good, "--method", "random", "--budgets", "4"]
    return {
        "flags-compare-seeds-10000": [*compare, "--seeds", ",".join(map(str, range(10_000)))],
        "flags-compare-finetune-epochs-1e12": [*compare, "--finetune-epochs", "1e12"],
        "flags-linearize-finetune-epochs-10-12": [*linearize, "--finetune-epochs", str(10**12)],
        "flags-toy-seeds-1e9": ["toy", "--seeds", "1000000000"],
        "flags-toy-steps-10-12": ["toy", "--seeds", "1", "--steps", str(10**12)],
        "flags-train-base-epochs-10-12": ["train-base", "--dataset", "toy2d", "--model", "mlp", "--epochs", str(10**12),
                                          "--out", out + "/m.safetensors"],
        "flags-default-audit-snl-epochs-10-12": ["default-audit", "--checkpoint", good, "--out", out,
                                                 "--snl-epochs", str(10**12)],
        "flags-sweep-32000-runs": ["sweep", "--checkpoint", good, "--budgets", ",".join(map(str, range(1, 33))),
                                   "--seeds", ",".join(map(str, range(1000))), "--store", str(w["top"] / "store")],
        "flags-linearize-eta-inf": [*linearize, "--mitigation", "groupdro", "--eta", "inf"],
        "flags-linearize-eta-nan": [*linearize, "--mitigation", "groupdro", "--eta", "nan"],
        "flags-toy-lr-1e400": ["toy", "--seeds", "1", "--lr", "1e400"],
        "flags-linearize-snl-epochs-negative-random": [*linearize, "--snl-epochs", "-1"],
        "flags-linearize-trust-model-code-garbage": [*linearize, "--trust-model-code", "\x01#,:" * 1000],
        "flags-linearize-dataset-option-without-dataset": [*linearize, "--dataset-option", "garbage"],
        "flags-compare-dataset-option-without-dataset": [*compare, "--dataset-option", "n=5"],
        "flags-import-model-kwargs-100k": ["import-checkpoint", str(folder / "missing.pth"), "--format", "state-dict",
                                           "--arch", "mlp", "--dataset", "toy2d", "--out", out + "/i.safetensors",
                                           "--model-kwargs", "{" + LONG],
        "flags-relu-count-stem-100k": ["relu-count", "--model", "resnet18", "--input-size", "32", "--stem", LONG],
        "flags-toy-ambiguous-option-100k": ["toy", f"--s={LONG}"],
        "flags-cost-bandwidth-zero": ["cost", "--checkpoint", good, "--profile", str(folder / "bandwidth0.json")],
        "flags-import-sparse-tensor": ["import-checkpoint", str(folder / "sparse.pth"), "--format", "state-dict",
                                       "--arch", "mlp", "--dataset", "toy2d", "--out", out + "/sparse.safetensors"],
    }


def _store_world(top: Path) -> None:
    """top/stores/<case>: run stores whose index, journal or folders are the wrong kind of file (no runs in them)."""
    stores = top / "stores"
    for name in ("index-folder", "index-fifo", "journal-folder", "other-layout", "runs-file", "staging-file"):
        (stores / name).mkdir(parents=True)
    (stores / "index-folder" / "runs.sqlite").mkdir()
    os.mkfifo(stores / "index-fifo" / "runs.sqlite")  # opening it to read would wait for a writer forever
    sqlite3.connect(stores / "journal-folder" / "runs.sqlite").executescript("CREATE TABLE t (x);")
    (stores / "journal-folder" / "runs.sqlite-journal").mkdir()
    db = sqlite3.connect(stores / "other-layout" / "runs.sqlite")
    db.executescript("CREATE TABLE runs (x); INSERT INTO runs VALUES (1); CREATE TABLE defaults (y);")
    db.close()
    (stores / "runs-file" / "runs").write_text("x")
    (stores / "staging-file" / "staging").write_text("x")
    (stores / "plain-file").write_text("x")
    os.mkfifo(stores / "fifo")


def _store_cases(w) -> dict:
    """Run stores that are not what they should be: refused with one line, never a traceback or a hang."""
    stores, good = w["top"] / "stores", str(w["good"])

    def runs(name, *more):
        return ["runs", *more, "--store", str(stores / name), "--json"]

    def sweep(name):
        return ["sweep", "--checkpoint", good, "--methods", "random", "--budgets", "4", "--store", str(stores / name)]

    return {
        "store-index-is-a-folder": runs("index-folder"), "store-index-is-a-fifo": runs("index-fifo"),
        "store-index-is-a-fifo-sweep": sweep("index-fifo"), "store-journal-is-a-folder": runs("journal-folder"),
        "store-index-other-layout": runs("other-layout"), "store-index-other-layout-sweep": sweep("other-layout"),
        "store-runs-is-a-file": sweep("runs-file"), "store-staging-is-a-file": sweep("staging-file"),
        "store-is-a-file": runs("plain-file"), "store-is-a-fifo": runs("fifo"),
    }


def _all_cases(w) -> dict:
    cases = {f"sidecar-{k}": ["evaluate", "--checkpoint", str(p), "--data-root", str(w["data"])]
             for k, p in w["checkpoints"].items()}
    bad = str(w["checkpoints"]["folder-csv-absolute"])
    cases["linearize-sidecar-folder-csv-absolute"] = ["linearize", "--checkpoint", bad, "--method", "random",
                                                      "--budget", "4", "--out", str(w["top"] / "out"),
                                                      "--data-root", str(w["data"])]
    cases["audit-sidecar-width-1e9"] = ["audit", "--base", str(w["checkpoints"]["width-1e9"]), "--linearized",
                                        str(w["good"])]
    cases["sweep-sidecar-input-shape-negative"] = ["sweep", "--checkpoint",
                                                   str(w["checkpoints"]["input-shape-negative"]), "--budgets", "4",
                                                   "--store", str(w["top"] / "store")]
    return {**cases, **_flag_cases(w), **_tree_cases(w), **_outputs_cases(w), **_weights_cases(w),
            **_files_cases(w), **_flags_cases(w), **_store_cases(w)}


_PLACEHOLDER = Path(".")
CASE_IDS = sorted(_all_cases({"top": _PLACEHOLDER, "data": _PLACEHOLDER, "good": _PLACEHOLDER,
                              "checkpoints": {k: _PLACEHOLDER for k in [*_sidecar_cases(), *RAW]}}))


def _snapshot() -> dict[str, int]:
    """mtime (ns) of every file under the repository's checkpoints/ and results/."""
    return {str(p): p.stat().st_mtime_ns for folder in ("checkpoints", "results")
            for p in (REPO / folder).rglob("*") if p.is_file()}


def test_at_least_120_cases():
    assert len(CASE_IDS) >= 120


@pytest.mark.parametrize("case", CASE_IDS)
def test_malformed_input_exits_2_with_one_line(case, world, capsys, monkeypatch):
    monkeypatch.chdir(world["top"])
    monkeypatch.setenv("FAIRLIN_DATA_ROOT", str(world["data"]))
    monkeypatch.setenv("FAIRLIN_STORE", str(world["top"] / "store"))
    argv = _all_cases(world)[case]
    before = _snapshot()
    try:
        code = main(argv)
    except SystemExit as exit:  # argparse refusals
        code = exit.code
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert code == 2, (code, captured.err[:500])
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err[:1000]
    assert len(lines[0]) < 1000, lines[0][:300]
    assert "SECRET" not in captured.err and "root:x" not in captured.err
    assert captured.out == ""
    assert _snapshot() == before


def test_weights_posix_system_payload_never_runs(world, capsys, monkeypatch):
    """The fuzz case's pickle calls posix.system("touch RAN") when unpickled any other way: refused, it names the
    global and RAN never appears."""
    monkeypatch.chdir(world["top"])
    assert main(_all_cases(world)["weights-import-pickle-posix-system"]) == 2
    assert "needs the global posix.system" in capsys.readouterr().err
    assert not (world["top"] / "weights" / "RAN").exists()
