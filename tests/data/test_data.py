"""Dataset layer: protocol helpers, every loader on tiny real files in the real layouts, registry."""

from __future__ import annotations

import codecs
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from numpy._core.multiarray import _reconstruct
from sklearn.datasets import load_digits

from conftest import cifar_bomb, write_cifar
from fairlin_core.data import DATASETS, DatasetBundle, list_datasets, load_dataset, resolve_data_root
from fairlin_core.data import protocol
from fairlin_core.data.toy2d import crescent
from fairlin_core.errors import DatasetError

SPLITS = ("train", "val", "test")


def counts(bundle: DatasetBundle, split: str, n: int = 10) -> list[int]:
    return torch.bincount(bundle.splits[split].y, minlength=n).tolist()


def digit_rows(x: torch.Tensor) -> Counter:
    """Multiset of digits images as their integer pixels (0..16), to compare splits by content."""
    pixels = torch.round((x * 0.3760 + 0.3053) * 16).to(torch.int64)
    return Counter(tuple(r.tolist()) for r in pixels.reshape(len(x), -1))


def assert_same_splits(a: DatasetBundle, b: DatasetBundle) -> None:
    assert a.splits.keys() == b.splits.keys()
    for name in a.splits:
        assert torch.equal(a.splits[name].x, b.splits[name].x)
        assert torch.equal(a.splits[name].y, b.splits[name].y)
        assert torch.equal(a.splits[name].group, b.splits[name].group)


# ----------------------------------------------------------------------------- protocol

def test_stratified_partition_covers_everything_and_keeps_tiny_classes_in_train():
    strata = np.array([0] * 50 + [1] + [2] * 2 + [3] * 3)
    parts = protocol.stratified_partition(strata, [0.6, 0.2, 0.2], np.random.default_rng(0))
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(strata)))
    assert [len(p) for p in parts] == [30 + 1 + 2 + 1, 10 + 1, 10 + 1]
    assert np.isin([50, 51, 52], parts[0]).all()  # the singleton and the pair stay in train
    assert (strata[parts[0]] == 3).sum() == 1


def test_subsample_classes_keeps_rounded_fraction_and_at_least_one():
    labels = np.repeat(np.arange(4), [100, 55, 3, 1])
    kept = protocol.subsample_classes(labels, np.array([0.9, 0.2, 0.1, 0.1]), np.random.default_rng(1))
    assert np.bincount(labels[kept]).tolist() == [90, 11, 1, 1]
    assert len(np.unique(kept)) == len(kept)


# ----------------------------------------------------------------------------- digits

def test_image_split_from_blocks_equals_split_of_their_concatenation(monkeypatch):
    """Batch files are gathered as blocks (no concatenated copy): same rows, same floats, across chunks."""
    rng = np.random.default_rng(3)
    blocks = [rng.integers(0, 256, (n, 3, 4, 4), dtype=np.uint8) for n in (5, 1, 7, 4)]
    whole = np.concatenate(blocks)
    index = np.array([0, 4, 5, 6, 12, 13, 16, 2, 9])  # every block boundary, out of order
    assert np.array_equal(protocol.take_rows(blocks, index), whole[index])
    monkeypatch.setattr(protocol, "GATHER_CHUNK", 2)
    labels = np.arange(len(whole))
    for pos in (index, None):
        from_blocks = protocol.image_split(blocks, 255.0, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), labels, labels, pos)
        from_whole = protocol.image_split(whole, 255.0, (0.5, 0.4, 0.3), (0.2, 0.25, 0.3), labels, labels, pos)
        assert torch.equal(from_blocks.x, from_whole.x) and torch.equal(from_blocks.y, from_whole.y)
    assert from_blocks.x.shape == (17, 3, 4, 4)


def test_digits_protocol_counts_and_balanced_split():
    bundle = load_dataset("digits", seed=3)
    totals = np.bincount(load_digits().target, minlength=10)
    held_out = np.array(counts(bundle, "balanced"))
    assert held_out.tolist() == [int(np.floor(t * 0.3 + 0.5)) for t in totals]
    keep = [0.9] * 5 + [0.2] * 5
    train_val = np.array(counts(bundle, "train")) + np.array(counts(bundle, "val"))
    assert train_val.tolist() == [int(np.floor((t - h) * f + 0.5)) for t, h, f in zip(totals, held_out, keep)]
    test = counts(bundle, "test")
    assert test == [int(np.floor(h * f + 0.5)) for h, f in zip(held_out, keep)]
    assert all(10 <= c <= 11 for c in test[5:]) and all(47 <= c <= 50 for c in test[:5])
    val = counts(bundle, "val")
    assert all(abs(v - 0.15 * tv) <= 1 for v, tv in zip(val, train_val))
    # balanced = every held-out image: it holds test, and never an image also used for train/val
    parts = {name: digit_rows(split.x) for name, split in bundle.splits.items()}
    whole = Counter(tuple(r) for r in load_digits().images.reshape(-1, 64).astype(int).tolist())
    assert not parts["test"] - parts["balanced"]
    assert not (parts["train"] + parts["val"] + parts["balanced"]) - whole


def test_digits_tensors_options_and_seeds():
    bundle = load_dataset("digits")
    train = bundle.splits["train"]
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64 and train.group.dtype == torch.int64
    assert bundle.input_shape == (1, 8, 8) and torch.equal(train.y, train.group)
    pixels = train.x * 0.3760 + 0.3053
    assert pixels.min() > -1e-5 and pixels.max() < 1 + 1e-5
    assert bundle.class_names == [str(d) for d in range(10)] == bundle.group_names
    assert bundle.target_attribute == bundle.group_attribute == "digit"
    assert bundle.options == {"seed": 0, "target": "digit", "group": "digit", "test_fraction": 0.3,
                              "major_fraction": 0.9, "minor_fraction": 0.2, "val_fraction": 0.15,
                              "mean": [0.3053], "std": [0.3760]}
    assert_same_splits(bundle, load_dataset("digits", seed=0))
    assert_same_splits(bundle, load_dataset("digits", **bundle.options))
    other = load_dataset("digits", seed=1)
    assert not torch.equal(other.splits["test"].x, bundle.splits["test"].x)


def test_digits_fraction_options_change_counts():
    bundle = load_dataset("digits", major_fraction=1.0, minor_fraction=0.5)
    test, balanced = counts(bundle, "test"), counts(bundle, "balanced")
    assert test[:5] == balanced[:5]
    assert test[5:] == [int(np.floor(b * 0.5 + 0.5)) for b in balanced[5:]]


@pytest.mark.parametrize("options, message", [
    ({"minor_fraction": 1.5}, r"minor_fraction must be in \(0, 1\], got 1.5"),
    ({"major_fraction": 0}, r"major_fraction must be in \(0, 1\], got 0"),
    ({"val_fraction": 1.0}, r"val_fraction must be in \(0, 1\), got 1.0"),
    ({"minor_fraction": "a lot"}, r"minor_fraction must be a finite number"),
    ({"mean": (0.1, 0.2)}, r"mean must be a list of 1"),
    ({"bogus": 1}, r"unknown option\(s\) bogus for dataset 'digits'; valid options: .*minor_fraction"),
    ({"target": "age"}, r"target 'age' is not an attribute of digits; valid: digit"),
    ({"seed": -1}, r"seed must be a non-negative integer"),
])
def test_digits_invalid_options(options, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("digits", **options)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(DatasetError, match=r"unknown dataset 'mnist'; valid names: digits, toy2d, cifar10"):
        load_dataset("mnist")


# ----------------------------------------------------------------------------- toy2d

def test_toy2d_paper_crescent_geometry_and_ratio():
    bundle = load_dataset("toy2d", seed=5)
    x = torch.cat([bundle.splits[s].x for s in SPLITS]).numpy()
    y = torch.cat([bundle.splits[s].y for s in SPLITS]).numpy()
    assert x.shape == (2000, 2) and x.dtype == np.float32 and np.abs(x).max() <= 1
    assert (crescent(x) == (y == 1)).all()  # noise 0: labels follow the rule exactly
    assert 7 <= (y == 0).sum() / (y == 1).sum() <= 13
    sizes = [len(bundle.splits[s]) for s in SPLITS]
    assert sizes[0] == pytest.approx(1200, abs=2) and sizes[1] == pytest.approx(400, abs=2)
    assert "balanced" not in bundle.splits
    assert bundle.class_names == ["majority", "minority"] and bundle.target_attribute == "class"


def test_toy2d_label_noise_flips_that_share():
    bundle = load_dataset("toy2d", noise=0.05)
    x = torch.cat([bundle.splits[s].x for s in SPLITS]).numpy()
    y = torch.cat([bundle.splits[s].y for s in SPLITS]).numpy()
    assert (crescent(x) != (y == 1)).sum() == 100


@pytest.mark.parametrize("shape", ["paper", "disk", "moons", "circles", "xor", "spiral"])
def test_toy2d_every_shape_loads(shape):
    bundle = load_dataset("toy2d", shape=shape, n=500, seed=2)
    y = torch.cat([bundle.splits[s].y for s in SPLITS])
    assert sum(len(bundle.splits[s]) for s in SPLITS) == 500 and bundle.input_shape == (2,)
    minority = int((y == 1).sum())
    if shape in ("moons", "circles", "xor", "spiral"):
        assert minority == round(500 * 0.1 / 1.1) and bundle.options["minority_ratio"] == 0.1
    else:
        assert 0 < minority < 100 and bundle.options["minority_ratio"] is None
    assert_same_splits(bundle, load_dataset("toy2d", **bundle.options))


@pytest.mark.parametrize("options, message", [
    ({"shape": "blob"}, r"shape must be one of paper, disk, xor, moons, circles, spiral; got 'blob'"),
    ({"minority_ratio": 0.2}, r"minority_ratio applies only to shapes xor, moons, circles, spiral"),
    ({"shape": "moons", "minority_ratio": 1.5}, r"minority_ratio must be in \(0, 1\], got 1.5"),
    ({"noise": 0.7}, r"noise must be in \[0, 0.5\], got 0.7"),
    ({"n": 3}, r"n must be an integer >= 10, got 3"),
])
def test_toy2d_invalid_options(options, message):
    with pytest.raises(DatasetError, match=message):
        load_dataset("toy2d", **options)


# ----------------------------------------------------------------------------- cifar10

def test_cifar10_loads_real_layout_with_imbalance(tmp_path):
    batches = write_cifar(tmp_path)
    bundle = load_dataset("cifar10", data_root=tmp_path, seed=4)
    assert bundle.input_shape == (3, 32, 32) and bundle.class_names == [f"c{i}" for i in range(10)]
    # per class: 10 train images -> 9 (classes 0-4) or 1 (5-9); 2 test images -> 2 or 1
    train_val = np.array(counts(bundle, "train")) + np.array(counts(bundle, "val"))
    assert train_val.tolist() == [9] * 5 + [1] * 5
    assert counts(bundle, "test") == [2] * 5 + [1] * 5
    assert counts(bundle, "val") == [1] * 5 + [0] * 5
    balanced = bundle.splits["balanced"]
    raw = batches["test_batch"]
    assert balanced.y.tolist() == raw[b"labels"]
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
    pixels = torch.round((balanced.x * std + mean) * 255).to(torch.uint8)
    assert torch.equal(pixels, torch.from_numpy(raw[b"data"].reshape(-1, 3, 32, 32)))
    assert_same_splits(bundle, load_dataset("cifar10", data_root=tmp_path, **bundle.options))


def test_cifar10_without_meta_uses_standard_names(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "batches.meta").unlink()
    bundle = load_dataset("cifar10", data_root=tmp_path)
    assert bundle.class_names[:3] == ["airplane", "automobile", "bird"]


class _Exploit:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_cifar10_refuses_malicious_pickle(tmp_path):
    write_cifar(tmp_path)
    marker = tmp_path / "pwned"
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": _Exploit(marker), b"labels": []}, handle, protocol=2)
    with pytest.raises(DatasetError, match=r"data_batch_3: refusing to unpickle (posix|nt|os)\.system"):
        load_dataset("cifar10", data_root=tmp_path)
    assert not marker.exists()


class _Reduce:
    """Pickles as ``func(*args)`` (then BUILD ``state`` when given): numpy's own reduce, with chosen arguments."""

    def __init__(self, func, args, state=None):
        self.reduced = (func, args) if state is None else (func, args, state)

    def __reduce__(self):
        return self.reduced


_ARRAY = (_reconstruct, (np.ndarray, (0,), b"b"))  # how numpy pickles an array: an empty placeholder, then BUILD


@pytest.mark.parametrize("batch, message", [
    (None, r"refusing dtype 'object'"),  # the bomb: 167 bytes, 250M object entries (segfaulted numpy)
    ({b"data": _Reduce(_reconstruct, (np.ndarray, (10**9,), b"b")), b"labels": []},
     r"refusing an array placeholder of shape \(1000000000,\)"),
    ({b"data": _Reduce(*_ARRAY, (1, (10**6, 3072), np.dtype("u1"), False, b"\0" * 3072)), b"labels": []},
     r"refusing an array of shape \(1000000, 3072\) \(3,072,000,000 bytes\) from 3,072 bytes of data"),
    ({b"data": np.zeros((1, 3072), np.uint8), b"labels": _Reduce(codecs.encode, ("\u1234" * 9, "unicode_escape"))},
     r"refusing codecs.encode with 'unicode_escape'"),
    ({b"data": np.zeros((1, 3072), np.float64), b"labels": [0]}, r"refusing dtype 'float64'"),
], ids=["object-bomb", "placeholder-1e9", "shape-beyond-its-bytes", "expanding-codec", "float-array"])
def test_cifar10_arrays_are_checked_before_numpy_allocates_them(tmp_path, batch, message):
    """Only uint8 arrays whose declared size equals the bytes the file holds for them (no object dtypes, no
    placeholder shapes), integer dtypes and latin-1 codecs are unpickled; each refusal names what was refused."""
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(cifar_bomb() if batch is None else pickle.dumps(batch, protocol=2))
    with pytest.raises(DatasetError, match=f"data_batch_2: {message}: a CIFAR-10 batch holds uint8 arrays"):
        load_dataset("cifar10", data_root=tmp_path)


def test_cifar10_batches_of_every_pickle_protocol_load(tmp_path):
    batches = write_cifar(tmp_path)
    for protocol_version in range(2, pickle.HIGHEST_PROTOCOL + 1):  # 5 stores arrays through _frombuffer
        with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
            pickle.dump(batches["test_batch"], handle, protocol=protocol_version)
        balanced = load_dataset("cifar10", data_root=tmp_path).splits["balanced"]
        assert balanced.y.tolist() == batches["test_batch"][b"labels"]


def test_cifar10_missing_file_names_layout(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DatasetError, match=r"missing .*cifar-10-batches-py[/\\]test_batch; expected "
                                           r"<data_root>/cifar-10-batches-py/ with data_batch_1"):
        load_dataset("cifar10", data_root=tmp_path)


@pytest.mark.parametrize("batch, message", [
    ({b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4},
     r"shape \(N, 3072\), got ndarray with shape \(4, 100\)"),
    ({b"labels": [0]}, r"expected a dict with keys b'data' and b'labels'"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}, r"integers in 0..9"),
])
def test_cifar10_malformed_batch(tmp_path, batch, message):
    write_cifar(tmp_path)
    with open(tmp_path / "cifar-10-batches-py" / "data_batch_1", "wb") as handle:
        pickle.dump(batch, handle)
    with pytest.raises(DatasetError, match=message):
        load_dataset("cifar10", data_root=tmp_path)


# ----------------------------------------------------------------------------- svhn

def write_svhn(root: Path) -> dict[str, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = {}
    for name, n in (("train", 40), ("test", 20)):
        x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        y = (np.arange(n) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10, 10 = digit 0
        scipy.io.savemat(root / f"{name}_32x32.mat", {"X": x, "y": y})
        written[name] = x
    return written


def test_svhn_loads_and_maps_label_ten_to_zero(tmp_path):
    written = write_svhn(tmp_path)
    bundle = load_dataset("svhn", data_root=tmp_path)
    assert set(bundle.splits) == set(SPLITS) and bundle.input_shape == (3, 32, 32)
    test = bundle.splits["test"]
    assert test.y.tolist() == [(i % 10 + 1) % 10 for i in range(20)]
    assert counts(bundle, "test") == [2] * 10
    assert (np.array(counts(bundle, "train")) + np.array(counts(bundle, "val"))).tolist() == [4] * 10
    mean = torch.tensor([0.4377, 0.4438, 0.4728]).view(1, 3, 1, 1)
    std = torch.tensor([0.1980, 0.2010, 0.1970]).view(1, 3, 1, 1)
    pixels = torch.round((test.x * std + mean) * 255).to(torch.uint8)
    assert torch.equal(pixels, torch.from_numpy(written["test"].transpose(3, 2, 0, 1).copy()))


def test_svhn_missing_or_malformed(tmp_path):
    with pytest.raises(DatasetError, match=r"missing .*train_32x32\.mat; expected"):
        load_dataset("svhn", data_root=tmp_path)
    write_svhn(tmp_path)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1))})
    with pytest.raises(DatasetError, match=r"test_32x32\.mat: 'X' must be uint8 of shape \(32, 32, 3, N\)"):
        load_dataset("svhn", data_root=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match=r"not a readable MATLAB file"):
        load_dataset("svhn", data_root=tmp_path)


# ----------------------------------------------------------------------------- utkface

UTK_AGES = [2, 5, 12, 13, 15, 17, 18, 30, 64, 65, 80, 100]


def write_utkface(root: Path) -> list[tuple[int, int, int]]:
    """30 valid files (+1 .jpg.chip.jpg), 2 aged 0-1, 3 malformed names, 1 non-image file."""
    folder = root / "UTKFace"
    folder.mkdir(parents=True)
    valid = [(UTK_AGES[i % len(UTK_AGES)], i % 2, i % 5) for i in range(31)]
    for i, (age, gender, race) in enumerate(valid):
        suffix = ".jpg.chip.jpg" if i == 30 else ".jpg"
        Image.new("RGB", (48, 40), (8 * i, 100, 200)).save(folder / f"{age}_{gender}_{race}_2017010{i:03d}{suffix}")
    for name in ("0_0_1_201701.jpg", "1_1_2_201702.jpg", "abc.jpg", "25_0.jpg", "30_0_9_x.jpg"):
        Image.new("RGB", (8, 8)).save(folder / name, format="JPEG")
    (folder / "README.txt").write_text("not an image")
    return valid


def test_utkface_parses_names_skips_malformed_and_groups_ages(tmp_path):
    valid = write_utkface(tmp_path)
    bundle = load_dataset("utkface", data_root=tmp_path, target="age", group="gender")
    assert bundle.skipped == 3 and bundle.options["dropped_age"] == 2
    assert bundle.class_names == ["2-12", "13-17", "18-64", "65+"] and bundle.group_names == ["male", "female"]
    y = torch.cat([bundle.splits[s].y for s in SPLITS]).tolist()
    g = torch.cat([bundle.splits[s].group for s in SPLITS]).tolist()
    expected_age = Counter(0 if a <= 12 else 1 if a <= 17 else 2 if a <= 64 else 3 for a, _, _ in valid)
    assert Counter(y) == expected_age and Counter(g) == Counter(gender for _, gender, _ in valid)
    assert sum(len(bundle.splits[s]) for s in SPLITS) == 31
    assert len(bundle.splits["test"]) == pytest.approx(31 * 0.2, abs=3)
    assert bundle.input_shape == (3, 32, 32)
    assert bundle.splits["train"].x.abs().max() <= 1.0 + 1e-6


def test_utkface_default_race_and_switchable_attributes(tmp_path):
    write_utkface(tmp_path)
    bundle = load_dataset("utkface", data_root=tmp_path, image_size=16)
    assert bundle.target_attribute == bundle.group_attribute == "race" and bundle.input_shape == (3, 16, 16)
    assert bundle.class_names == ["White", "Black", "Asian", "Indian", "Others"]
    for split in SPLITS:
        assert torch.equal(bundle.splits[split].y, bundle.splits[split].group)
    swapped = load_dataset("utkface", data_root=tmp_path, target="gender", group="age")
    assert swapped.num_classes == 2 and len(swapped.group_names) == 4
    assert_same_splits(bundle, load_dataset("utkface", data_root=tmp_path, **bundle.options))
    with pytest.raises(DatasetError, match=r"group 'ethnicity' is not an attribute of utkface; valid: age, race, "):
        load_dataset("utkface", data_root=tmp_path, group="ethnicity")


def test_utkface_unreadable_image_is_skipped(tmp_path):
    write_utkface(tmp_path)
    (tmp_path / "UTKFace" / "40_1_2_20170199.jpg").write_bytes(b"truncated garbage")
    bundle = load_dataset("utkface", data_root=tmp_path)
    assert bundle.skipped == 4 and sum(len(bundle.splits[s]) for s in SPLITS) == 31


def test_utkface_missing_folder(tmp_path):
    with pytest.raises(DatasetError, match=r"missing .*UTKFace; expected <data_root>/UTKFace/"):
        load_dataset("utkface", data_root=tmp_path)


# ----------------------------------------------------------------------------- folder

def write_folder(root: Path) -> Path:
    (root / "imgs").mkdir(parents=True)
    lines = ["path,label,group,site"]
    for i in range(24):
        Image.new("RGB", (20, 12), (10 * i, 0, 0)).save(root / "imgs" / f"{i}.png")
        lines.append(f"imgs/{i}.png,{'cat' if i % 3 else 'dog'},{(1, 2, 10)[i // 3 % 3]},s{i % 2}")
    lines.append("imgs/missing.png,cat,1,s0")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return root


def test_folder_loads_csv_with_sorted_names(tmp_path):
    write_folder(tmp_path / "folder")
    bundle = load_dataset("folder", data_root=tmp_path)
    assert bundle.class_names == ["cat", "dog"] and bundle.group_names == ["1", "2", "10"]
    assert bundle.skipped == 1 and sum(len(bundle.splits[s]) for s in SPLITS) == 24
    assert counts(bundle, "train", 2)[1] + counts(bundle, "val", 2)[1] + counts(bundle, "test", 2)[1] == 8
    assert bundle.input_shape == (3, 32, 32)
    assert bundle.options["root"] is None and bundle.options["csv"] is None  # the defaults: no path recorded
    assert_same_splits(bundle, load_dataset("folder", data_root=tmp_path, **bundle.options))
    by_site = load_dataset("folder", root=tmp_path / "folder", target="site", group="label", image_size=8)
    assert by_site.class_names == ["s0", "s1"] and by_site.group_names == ["cat", "dog"]
    assert by_site.input_shape == (3, 8, 8)


@pytest.mark.parametrize("csv, message", [
    ("path,label\nimgs/0.png,cat\n",
     r"lacks column\(s\) group in its header \(2 columns found\); required path, label, group"),
    ("path,label,group\n../outside.png,cat,1\n", r"line 2: path '../outside.png' must name a file inside"),
    ("path,label,group\nimgs/0.png,,1\n", r"column 'label' is empty on line\(s\) 2"),
    ("path,label,group\n", r"has a header but no rows"),
])
def test_folder_bad_csv_refused(tmp_path, csv, message):
    write_folder(tmp_path)
    (tmp_path / "labels.csv").write_text(csv)
    with pytest.raises(DatasetError, match=message):
        load_dataset("folder", root=tmp_path)


def test_folder_unknown_attribute_and_missing_csv(tmp_path):
    write_folder(tmp_path)
    with pytest.raises(DatasetError, match=r"target 'path' is not an attribute column .*choose one of label, group, s"):
        load_dataset("folder", root=tmp_path, target="path")
    with pytest.raises(DatasetError, match=r"folder dataset CSV missing: .*other\.csv"):
        load_dataset("folder", root=tmp_path, csv="other.csv")


# ----------------------------------------------------------------------------- registry

def test_list_datasets_reports_availability_with_reasons(tmp_path):
    status = {row["name"]: row for row in list_datasets(tmp_path)}
    assert list(status) == list(DATASETS)
    assert status["digits"]["available"] and status["toy2d"]["available"]
    for name in ("cifar10", "svhn", "utkface", "folder"):
        assert not status[name]["available"]
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in status["cifar10"]["reason"]
    assert str(tmp_path / "train_32x32.mat") in status["svhn"]["reason"]
    assert str(tmp_path / "folder" / "labels.csv") in status["folder"]["reason"]
    (tmp_path / "UTKFace").mkdir()
    assert "no .jpg files in" in {r["name"]: r for r in list_datasets(tmp_path)}["utkface"]["reason"]

    write_cifar(tmp_path)
    write_svhn(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "UTKFace" / "20_0_0_1.jpg")
    write_folder(tmp_path / "folder")
    status = {row["name"]: row for row in list_datasets(tmp_path)}
    files = [row for name, row in status.items() if not DATASETS[name].embedded]
    assert len(files) == 4 and all(row["available"] and row["reason"] == "" for row in files)


def test_registry_specs_describe_loaders():
    assert set(DATASETS) == {"digits", "toy2d", "cifar10", "svhn", "utkface", "folder"}
    assert DATASETS["utkface"].attributes == ("age", "race", "gender") and DATASETS["utkface"].default_target == "race"
    assert DATASETS["digits"].embedded and not DATASETS["cifar10"].embedded
    assert DATASETS["folder"].attributes is None and DATASETS["cifar10"].defaults["minor_fraction"] == 0.1


def test_resolve_data_root_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FAIRLIN_DATA_ROOT", raising=False)
    assert resolve_data_root() == tmp_path / "data"
    monkeypatch.setenv("FAIRLIN_DATA_ROOT", str(tmp_path / "env"))
    assert resolve_data_root(None) == tmp_path / "env"
    assert resolve_data_root(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_root("rel") == tmp_path / "rel"
    write_svhn(tmp_path / "env")
    assert len(load_dataset("svhn").splits["test"]) == 20  # the env root is used by load_dataset
