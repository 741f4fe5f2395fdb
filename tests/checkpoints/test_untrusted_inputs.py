"""Hostile and clumsy inputs, one test per class of issue 12: sidecar paths stay inside the data root and no
message quotes a file; sizes are bounded before anything is allocated; what used to be a traceback is a
FairLinError with a short message. Every bad input is built here, in tmp_path."""

import json
from pathlib import Path
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.io
from PIL import Image

from conftest import REPO, SECRET, TOY, cifar_bomb, copy_checkpoint, job_config, write_images
from fairlin_core.checkpoints import load_checkpoint, load_dataset_for
from fairlin_core.data import load_dataset
from fairlin_core.data.folder import MAX_ROWS
from fairlin_core.errors import CheckpointError, DatasetError, FairLinError, brief
from fairlin_core.models import MODELS, build_model, resolve_spec, state_shapes

def folder_sidecar(**options) -> dict:
    return {"dataset": {"name": "folder", "options": options, "target": "label", "group": "group"}}


# ----------------------------------------------------------------------------- reading what it should not

def test_sidecar_paths_resolve_inside_the_data_root_only(tmp_path):
    data = tmp_path / "data"
    write_images(data / "folder")
    write_images(data / "mine")
    outside = tmp_path / "secret.csv"
    outside.write_text(f"{SECRET}\npath,label,group\n")
    assert len(load_dataset_for(folder_sidecar(), data).splits["train"]) > 0  # the default place
    assert load_dataset_for(folder_sidecar(root="mine"), data).options["root"] == "mine"  # relative: inside

    refused = [{"csv": str(outside)}, {"root": str(tmp_path)}, {"root": "../"}, {"csv": "../../secret.csv"},
               {"root": "mine/../.."}, {"root": "~"}, {"root": 5}, {"csv": ""}]
    for options in refused:
        with pytest.raises(DatasetError, match="paths from a checkpoint sidecar must be relative") as info:
            load_dataset_for(folder_sidecar(**options), data)
        assert "SECRET" not in str(info.value)

    (data / "escape").symlink_to(tmp_path, target_is_directory=True)  # a folder link leaving the root
    os.symlink(outside, data / "folder" / "evil.csv")  # a file link leaving the root
    for options in ({"root": "escape"}, {"csv": "evil.csv"}):
        with pytest.raises(DatasetError, match="resolves \\(through a symbolic link\\) outside the data root") as info:
            load_dataset_for(folder_sidecar(**options), data)
        assert "SECRET" not in str(info.value)


def test_a_checkpoint_naming_any_file_is_refused_by_load_and_message_quotes_nothing(tmp_path):
    outside = tmp_path / "secret.csv"
    outside.write_text(f"{SECRET}\n")
    weights = copy_checkpoint(tmp_path / "ckpt", lambda s: s.update(folder_sidecar(csv=str(outside))))
    with pytest.raises(DatasetError, match="absolute or leaves its folder") as info:
        load_checkpoint(weights).dataset(tmp_path / "data")
    assert "SECRET" not in str(info.value)


def test_dataset_errors_name_the_file_but_never_quote_it(tmp_path):
    (tmp_path / "labels.csv").write_text(f"{SECRET}\nline two\n")
    with pytest.raises(DatasetError, match=r"lacks column\(s\) path, label, group in its header") as info:
        load_dataset("folder", root=tmp_path)  # a trusted path the user gave: still never quoted
    (tmp_path / "labels.csv").write_bytes(b"\xff\xfe" + SECRET.encode("utf-16-le") + b'\n"unterminated')
    with pytest.raises(DatasetError, match="not a readable CSV") as second:
        load_dataset("folder", root=tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (tmp_path / "cifar-10-batches-py" / name).write_text(SECRET)
    with pytest.raises(DatasetError, match="not a readable CIFAR-10 batch pickle") as third:
        load_dataset("cifar10", data_root=tmp_path)
    for error in (info, second, third):
        assert "SECRET" not in str(error.value) and "root:x" not in str(error.value)


# ----------------------------------------------------------------------------- resource exhaustion

@pytest.mark.parametrize("change, message", [
    (lambda m: m["options"].update(width=30000), r"width must be a positive integer at most 4,096, got 30000"),
    (lambda m: m["options"].update(width=10**9), r"width must be a positive integer at most 4,096"),
    (lambda m: m["options"].update(depth=10**6), r"depth must be a positive integer at most 64"),
    (lambda m: m.update(num_classes=10**8), r"num_classes must be a positive integer at most 100,000"),
    (lambda m: m.update(input_shape=[10**8]), r"every input dimension must be a positive integer at most 1,000,000"),
    (lambda m: m.update(input_shape=[1000, 1000, 1000]), r"input features .* at most 1,000,000"),
    (lambda m: m["options"].update(width=4096, depth=64), r"would hold [\d,]+ values .* the limit is 268,435,456"),
    (lambda m: m.update(name="resnet18", input_shape=[3, 32, 32], options={"width": 256}),
     r"does not match the architecture in its sidecar"),  # within bounds: the header is compared, nothing built
])
def test_sidecar_sizes_are_refused_before_allocation(tmp_path, change, message):
    weights = copy_checkpoint(tmp_path, lambda s: change(s["model"]))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(weights)


def test_meta_shapes_equal_the_real_model_for_every_zoo_entry():
    for name in MODELS:
        spec = resolve_spec(name, 3, (3, 16, 16) if name != "mlp" else (5,), width=4)
        assert state_shapes(spec) == {k: tuple(t.shape) for k, t in build_model(spec).state_dict().items()}


@pytest.mark.parametrize("name, options, message", [
    ("toy2d", {"n": 10**9}, r"n of dataset toy2d must be at most 1,000,000"),
    ("folder", {"image_size": 8000}, r"image_size of dataset folder must be at most 512"),
    ("utkface", {"image_size": 10**12}, r"image_size of dataset utkface must be at most 512"),
])
def test_dataset_size_options_are_bounded(tmp_path, name, options, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset(name, data_root=tmp_path, **options)


MEASURE = textwrap.dedent("""
    import json, resource, sys, time
    from fairlin_core.checkpoints import load_checkpoint
    from fairlin_core.data import load_dataset
    from fairlin_core.errors import FairLinError
    load = {"checkpoint": load_checkpoint, "cifar10": lambda root: load_dataset("cifar10", data_root=root)}[sys.argv[1]]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    try:
        load(sys.argv[2])
        message = None
    except FairLinError as error:
        message = str(error)
    seconds = time.perf_counter() - start
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    print(json.dumps({"seconds": seconds, "grown_mib": grown_kib / 1024, "message": message}))
""")


def measured(kind: str, path: Path) -> dict:
    """Load ``path`` (a checkpoint, or a CIFAR-10 data root) in a fresh subprocess, so the peak RSS is this load's
    alone: {"seconds", "grown_mib", "message" (the FairLinError, None when it loaded)}."""
    out = subprocess.run([sys.executable, "-c", MEASURE, kind, str(path)], capture_output=True, text=True, cwd=REPO,
                         env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]  # a crash (the CIFAR bomb segfaulted numpy) is no refusal
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name, options", [("mlp", {"depth": 2, "width": 10**9}),
                                           ("resnet18", {"width": 256, "stem_stride": 1})])
def test_huge_sidecar_refused_fast_without_memory(tmp_path, name, options):
    """The issue's figure: a width-1e9 sidecar (and a within-bounds 750 MB architecture whose weights do not
    match) refused in under 2 s, the process growing by under 200 MB. Measured in a fresh subprocess so the
    peak RSS is this load's alone; the 2 s bound is the one wall-clock figure the issue asks of a test, kept
    generous (the refusal takes milliseconds)."""
    shape = [3, 32, 32] if name != "mlp" else [2]
    weights = copy_checkpoint(tmp_path, lambda s: s["model"].update(name=name, input_shape=shape, options=options))
    result = measured("checkpoint", weights)
    assert result["message"] is not None, "the sidecar was accepted"
    assert result["seconds"] < 2.0 and result["grown_mib"] < 200, result


def test_a_sidecar_of_a_million_empty_objects_is_refused_before_parsing(tmp_path):
    """The issue's 31 MB sidecar of 7.5M ``{}`` reached 1.2 GB; 1.1M of them (3.3 MB, past the 1,000,000-value
    bound) in an otherwise valid sidecar are refused before json builds one, the process growing by under 200 MB."""
    weights = copy_checkpoint(tmp_path)
    sidecar = weights.with_suffix(".json")
    sidecar.write_text(sidecar.read_text()[:-1] + ', "pad": [' + ",".join(["{}"] * 1_100_000) + "]}")
    result = measured("checkpoint", weights)
    assert result["message"] is not None and "JSON values; expected at most 1,000,000" in result["message"], result
    assert result["seconds"] < 2.0 and result["grown_mib"] < 200, result


def test_a_cifar10_batch_bomb_is_refused_before_allocation(tmp_path):
    """The issue's 150-byte batch (numpy's array reduce with an object dtype of 250M entries) made dataset-info
    allocate 2.6-3 GB (and crash numpy): refused in under 2 s with under 200 MB growth, like a real batch it is
    in the Python 2 cPickle layout."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (folder / name).write_bytes(cifar_bomb())
    result = measured("cifar10", tmp_path)
    assert result["message"] is not None and "refusing dtype 'object'" in result["message"], result
    assert result["seconds"] < 2.0 and result["grown_mib"] < 200, result


def test_a_folder_csv_of_too_many_rows_is_refused_before_its_images_are_looked_at(tmp_path):
    """The issue's 3M-row CSV ran past 2 minutes at 1.7 GB: one row past MAX_ROWS is refused (parsing stops
    there), naming the limit."""
    rows = "\n".join(f"i/{i}.png,0,0" for i in range(MAX_ROWS + 1))
    (tmp_path / "labels.csv").write_text(f"path,label,group\n{rows}\n")
    with pytest.raises(DatasetError, match=r"labels\.csv lists more than 200,000 images; expected at most 200,000"):
        load_dataset("folder", root=tmp_path)


def _rewritten_weights(weights: Path, change) -> None:
    """``weights`` (a safetensors file) with its header JSON ``change``d in place and re-encoded."""
    data = weights.read_bytes()
    length = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + length])
    change(header)
    text = json.dumps(header).encode()
    weights.write_bytes(len(text).to_bytes(8, "little") + text + data[8 + length:])


@pytest.mark.parametrize("change, message", [
    (lambda h: next(e for k, e in h.items() if k != "__metadata__").update(data_offsets=[0, 10**12]),
     r"corrupt \([\d,]+ bytes where its header declares 1,000,000,000,\d+\)"),
    (lambda h: next(e for k, e in h.items() if k != "__metadata__").pop("shape"), r"has no shape and data offsets"),
    (lambda h: h.update(deep=json.loads("[" * 70 + "]" * 70)), r"header of .* is nested 71 levels deep"),
])
def test_a_weights_header_is_checked_before_its_data_is_read(tmp_path, change, message):
    """The weights are read through one open file, never past the size their header declares: a header claiming a
    terabyte is refused unread (not a MemoryError), a malformed or too deeply nested header is a CheckpointError."""
    weights = copy_checkpoint(tmp_path)
    _rewritten_weights(weights, change)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(weights)


NOT_REGULAR = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # a reader of /dev/zero fails, never fills memory
    from fairlin_core.checkpoints import load_checkpoint
    from fairlin_core.checkpoints.catalog import checkpoint_table
    from fairlin_core.errors import FairLinError
    from fairlin_core.jobs.config import checkpoint_digest
    messages = {}
    for name in sys.argv[2:]:
        for what, read in (("load", load_checkpoint), ("digest", checkpoint_digest)):
            try:
                read(Path(sys.argv[1], name, "model.safetensors"))
            except FairLinError as error:
                messages[f"{what} {name}"] = str(error)
    messages["catalog"] = checkpoint_table(f"{sys.argv[1]}/catalog")["checkpoint"].tolist()
    print(json.dumps(messages))
""")


def test_sidecars_and_weights_that_are_no_regular_files_are_refused(tmp_path):
    """A sidecar or weights file that is a FIFO (it used to hang), a link to /dev/zero (it read 3.5 GB) or a folder
    (IsADirectoryError): one CheckpointError each from load_checkpoint and the job hash, and the catalogue skips
    them. Run in a subprocess with a timeout and an address-space limit, so a reader that blocks or reads forever
    fails the test instead of hanging it."""
    makers = {"fifo": os.mkfifo, "zero": lambda path: path.symlink_to("/dev/zero"), "folder": Path.mkdir}
    cases = []
    for kind, make in makers.items():
        for part in ("sidecar", "weights"):
            weights = copy_checkpoint(tmp_path / f"{part}-{kind}")
            target = weights.with_suffix(".json") if part == "sidecar" else weights
            if part == "weights" and kind == "folder":
                continue  # a folder given as the checkpoint is searched for its one .safetensors file
            target.unlink()
            make(target)
            cases.append(f"{part}-{kind}")
    copy_checkpoint(tmp_path / "catalog")
    (tmp_path / "catalog" / "model.safetensors").rename(tmp_path / "catalog" / "good.safetensors")
    (tmp_path / "catalog" / "model.json").rename(tmp_path / "catalog" / "good.json")
    for kind, make in makers.items():
        (tmp_path / "catalog" / f"{kind}.safetensors").write_bytes(b"")
        make(tmp_path / "catalog" / f"{kind}.json")
    out = subprocess.run([sys.executable, "-c", NOT_REGULAR, str(tmp_path), *cases], capture_output=True, text=True,
                         cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    messages = json.loads(out.stdout)
    assert messages.pop("catalog") == ["good"]
    kinds = {"fifo": r"a named pipe \(FIFO\)", "zero": r"a character device \(through a symbolic link\)",
             "folder": "a folder"}
    for case in cases:
        part, kind = case.split("-")
        what = "sidecar" if part == "sidecar" else "checkpoint weights"
        for call in ("load", "digest"):
            assert re.fullmatch(f"{what} .*{case}/model.* is {kinds[kind]}, not a regular file; expected a regular "
                                f"file of at most .*", messages[f"{call} {case}"]), (call, case, messages)


def test_a_nul_byte_in_a_sidecar_or_option_path_is_a_dataset_error(tmp_path):
    """A sidecar naming the folder root "a\\u0000b" was a ValueError traceback (os.lstat in the confinement
    check); the path options are checked where they are resolved, for sidecars and flags alike."""
    for options in ({"root": "a\0b"}, {"csv": "labels\0.csv"}):
        with pytest.raises(DatasetError, match=r"contains a NUL byte; expected a path"):
            load_dataset_for(folder_sidecar(**options), tmp_path)
        with pytest.raises(DatasetError, match=r"contains a NUL byte; expected a path"):
            load_dataset("folder", data_root=tmp_path, **options)


# ----------------------------------------------------------------------------- tracebacks become one-line errors

@pytest.mark.parametrize("change, message", [
    (lambda s: s["model"].update(input_shape=[-2]), r"every input dimension must be a positive integer"),
    (lambda s: s["model"].update(input_shape="2"), r"model spec is malformed"),
    (lambda s: s["model"].update(num_classes=2.5), r"model spec is malformed"),
    (lambda s: s.update(model=[1, 2]), r"model spec .* is malformed"),
])
def test_malformed_sidecar_model_is_a_checkpoint_error(tmp_path, change, message):
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(copy_checkpoint(tmp_path, change))


@pytest.mark.parametrize("dataset, message", [
    ({"name": "toy2d", "options": ["n", 5]}, r"dataset options are \['n', 5\]; expected a JSON object"),
    ({"name": "toy2d", "options": "n=5"}, r"expected a JSON object"),
    ({"name": "toy2d", "options": {"seed": 2**64}}, r"seed must be a non-negative integer \(at most 2\*\*63 - 1\)"),
    ({"name": "toy2d", "options": {"seed": -1}}, r"seed must be a non-negative integer"),
    ({"name": "toy2d", "target": 7}, r"dataset target is 7; expected an attribute name"),
    ({"name": "toy2d", "class_names": "ab"}, r"class_names are 'ab'; expected a list"),
    ({"name": ["toy2d"]}, r"names no dataset"),
])
def test_malformed_sidecar_dataset_is_a_fairlin_error(dataset, message):
    with pytest.raises(FairLinError, match=message):
        load_dataset_for({"dataset": dataset})


def test_utkface_20_digit_age_is_skipped_not_an_overflow(tmp_path):
    folder = tmp_path / "UTKFace"
    folder.mkdir()
    Image.new("RGB", (8, 8)).save(folder / f"{'9' * 20}_0_0_20170101.jpg", format="JPEG")
    with pytest.raises(DatasetError, match=r"no usable UTKFace images .*1 skipped"):
        load_dataset("utkface", data_root=tmp_path)
    for i in range(20):
        Image.new("RGB", (8, 8)).save(folder / f"{20 + i}_{i % 2}_{i % 5}_2017010{i}.jpg", format="JPEG")
    bundle = load_dataset("utkface", data_root=tmp_path, image_size=8)
    assert bundle.skipped == 1 and sum(len(s) for s in bundle.splits.values()) == 20


def test_an_empty_validation_split_is_refused_before_training(tmp_path):
    from fairlin_core.train import train_base_checkpoint
    write_images(tmp_path / "folder", n=2)
    assert len(load_dataset("folder", data_root=tmp_path).splits["val"]) == 0
    with pytest.raises(DatasetError, match=r"empty val split .* expected more data or a larger val_fraction"):
        train_base_checkpoint("folder", "resnet18", out=tmp_path / "out" / "m", data_root=tmp_path,
                              model_options={"width": 4}, epochs=1)
    assert not (tmp_path / "out").exists()


def test_svhn_names_the_variables_a_file_holds(tmp_path):
    for name in ("train", "test"):
        scipy.io.savemat(tmp_path / f"{name}_32x32.mat", {"images": np.zeros((2, 2), np.uint8),
                                                         "labels": np.ones((2, 1))})
    with pytest.raises(DatasetError, match=r"expected variables 'X' and 'y', found 'images \(2, 2\), labels \(2, 1\)'"):
        load_dataset("svhn", data_root=tmp_path)


def test_echoed_input_is_capped():
    name = "x" * 100_000
    for call in (lambda: resolve_spec(name, 2, (2,)), lambda: load_dataset(name),
                 lambda: load_dataset("digits", **{name: 1})):
        with pytest.raises(FairLinError) as info:
            call()
        assert len(str(info.value)) < 400 and "(100000 characters)" in str(info.value)
    assert brief("abc") == "'abc'" and brief(list(range(1000))).endswith("(4890 characters as text)")


def test_negative_and_huge_seeds_are_refused_everywhere(toy_checkpoint):
    import fairlin_core as fl
    from fairlin_core.toy import ToyConfig, run_toy
    for seed in (-1, 2**64):
        calls = [lambda: load_dataset("toy2d", seed=seed),
                 lambda: job_config(checkpoint=TOY, method="random", budget=4, seed=seed).validate(),
                 lambda: job_config(checkpoint=TOY, method="random", budget=4,
                                   dataset={"name": "toy2d", "seed": seed}).validate(),
                 lambda: fl.linearize(toy_checkpoint, "random", 4, seed=seed),
                 lambda: fl.compare(toy_checkpoint, "random", [4], seeds=[0, seed]),
                 lambda: run_toy(ToyConfig(steps=1), [seed])]
        for call in calls:
            with pytest.raises(FairLinError, match="non-negative integer"):
                call()


def test_dashboard_upload_of_a_width_1e9_sidecar_is_refused_and_stores_nothing(tmp_path):
    from fairlin_core.checkpoints.upload import accept_upload
    sidecar = json.loads(Path(TOY).with_suffix(".json").read_text())
    sidecar["model"]["options"]["width"] = 10**9
    with pytest.raises(FairLinError, match=r"upload refused: .*width must be a positive integer at most 4,096"):
        accept_upload("big.safetensors", Path(TOY).read_bytes(), json.dumps(sidecar).encode(), tmp_path / "user")
    assert not (tmp_path / "user").exists()
