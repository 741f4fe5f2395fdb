"""default-audit never destroys results: the shipped folder is read-only to it, another grid or checkpoint in
--out is refused naming what differs, a bad grid is refused before any file is written, and duplicate inputs
are merged with a note (also in compare, sweep and the notebook functions)."""

import json

import pytest

import fairlin_core as fl
from fairlin_core.audits.grid import AuditGrid, normalize_grid
from conftest import DIGITS, REPO, TOY, run_cli, snapshot

TINY = ["--checkpoint", DIGITS, "--methods", "random", "--budgets", "2%", "--seeds", "0", "--finetune-epochs", "0",
        "--snl-epochs", "1", "--diagnostics", "", "--detail", ""]


def test_shipped_results_are_read_only_and_the_default_out_is_local(capsys, tmp_path, monkeypatch):
    shipped = REPO / "results" / "default_audit"
    before = snapshot(shipped)
    code, _, err = run_cli(capsys, "default-audit", *TINY, "--out", shipped)
    assert code == 2 and "shipped default audit" in err and "--overwrite" in err and len(err.splitlines()) == 1
    assert snapshot(shipped) == before

    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "default-audit", *TINY[:5], "2%,2x", *TINY[6:])  # a budget typo
    assert code == 2 and "'2x' is not a number" in err and list(tmp_path.iterdir()) == []  # no grid.json left
    code, out, _ = run_cli(capsys, "default-audit", *TINY)  # the corrected command is not blocked
    assert code == 0 and "fairlin_audit" in out and (tmp_path / "fairlin_audit" / "runs.parquet").exists()


def test_another_grid_checkpoint_or_folder_is_refused_naming_what_differs(capsys, tmp_path):
    out = tmp_path / "audit"
    assert run_cli(capsys, "default-audit", *TINY, "--out", out)[0] == 0
    before = snapshot(out)
    code, _, err = run_cli(capsys, "default-audit", *TINY[:7], "1", *TINY[8:], "--out", out)
    assert code == 2 and "different audit grid (seeds [0] there, [1] asked)" in err and "--overwrite" in err
    code, _, err = run_cli(capsys, "default-audit", "--checkpoint", TOY, *TINY[2:], "--out", out)
    assert code == 2 and "checkpoint 'digits_resnet18.safetensors' there, 'toy2d_mlp.safetensors' asked" in err
    assert "checkpoint content (sha256)" in err and snapshot(out) == before
    assert run_cli(capsys, "default-audit", *TINY, "--out", out)[0] == 0  # the same grid resumes
    assert snapshot(out / "chunks") == {k[len("chunks/"):]: v for k, v in before.items() if k.startswith("chunks/")}

    assert run_cli(capsys, "default-audit", *TINY[:7], "1", *TINY[8:], "--out", out, "--overwrite")[0] == 0
    assert json.loads((out / "meta.json").read_text())["grid"]["seeds"] == [1]
    assert sorted(p.name for p in (out / "chunks").iterdir()) == ["grid.json", "random-seed1"]

    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("my own work")
    code, _, err = run_cli(capsys, "default-audit", *TINY, "--out", other)
    assert code == 2 and "not an audit results folder (notes.txt)" in err
    assert sorted(p.name for p in other.iterdir()) == ["notes.txt"]


def test_duplicate_grid_inputs_are_merged_with_notes(capsys, tmp_path):
    grid, notes = normalize_grid(AuditGrid(DIGITS, methods=("random", "random"), budgets=("2%", "0.02", "154", "1%"),
                                           seeds=(0, 0, 1), diagnostic_seeds=(0, 0)))
    assert (grid.methods, grid.budgets, grid.seeds, grid.diagnostic_seeds) == (("random",), ("2%", "1%"), (0, 1), (0,))
    assert len(notes) == 4 and "budgets '2%', '0.02', '154' are the same (154 ReLUs)" in " ".join(notes)
    code, _, err = run_cli(capsys, "default-audit", *TINY[:7], "0,0", *TINY[8:], "--out", tmp_path / "a")
    assert code == 0 and "note: seed 0 was given 2 times; it counts once" in err
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["grid"]["seeds"] == [0] and meta["notes"] == ["seed 0 was given 2 times; it counts once"]


def test_compare_and_sweep_merge_duplicate_seeds_and_budgets(capsys, tmp_path, toy_checkpoint):
    code, out, err = run_cli(capsys, "compare", "--checkpoint", TOY, "--method", "random", "--budgets", "16,0.5",
                             "--seeds", "0,0", "--finetune-epochs", "0", "--json")
    result = json.loads(out)
    assert code == 0 and {row["n_seeds"] for row in result["rows"]} == {1}
    assert {row["budget"] for row in result["rows"]} == {"16"} and len(result["notes"]) == 2
    assert err.count("note: ") == 2 and "(16 ReLUs)" in err

    code, out, err = run_cli(capsys, "sweep", "--checkpoint", TOY, "--methods", "random,random", "--budgets",
                             "16,0.5", "--seeds", "0,0", "--finetune-epochs", "0", "--store", tmp_path / "s", "--json")
    result = json.loads(out)
    assert code == 0 and result["counts"] == {"done": 1} and len(result["notes"]) == 3

    comparison = fl.compare(toy_checkpoint, "random", [16, 0.5], seeds=[0, 0], finetune_epochs=0)
    assert len(comparison.notes) == 2 and comparison.runs["seed"].nunique() == 1
    assert comparison.runs["budget"].nunique() == 1


@pytest.mark.parametrize("budgets,message", [("2%,abc", "not a number"), ("2%,200%", "(0, 1]")])
def test_an_invalid_grid_writes_nothing(capsys, tmp_path, budgets, message):
    code, _, err = run_cli(capsys, "default-audit", *TINY[:5], budgets, *TINY[6:], "--out", tmp_path / "out")
    assert code == 2 and message in err and not (tmp_path / "out").exists()
