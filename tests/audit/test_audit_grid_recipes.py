"""The audit grid expands into recipes: one per method x budget x seed x (no mitigation, the grid's mitigation);
each run stores its recipe (the mitigation by name), and manifests written before grids held a recipe still
identify their grid (the shipped default audit is the default grid)."""

import json
import shutil
from dataclasses import replace

from fairlin_core.audits.grid import (DEFAULT_TEMPLATE, REPO_AUDIT, AuditGrid, _other_results, grid_record,
                                     migrate_manifest, normalize_grid, run_chunk)
from fairlin_core.finetune import MitigationConfig
from fairlin_core.linearizers import LinearizeRecipe
from conftest import DIGITS, TOY

GROUPDRO = replace(DEFAULT_TEMPLATE, mitigation=MitigationConfig(method="groupdro", eta=0.05)).with_epochs(1, 1)


def test_the_grid_expands_into_one_recipe_per_cell_and_mitigation():
    grid = AuditGrid(TOY, methods=("random", "snl"), budgets=("50%", "8"), seeds=(0, 1), recipe=GROUPDRO,
                     diagnostics=("grad",), detail=("attr",)).validate()
    recipes = list(grid.recipes())
    assert len(recipes) == 2 * 2 * 2 * 2
    assert [(r.method, r.budget, r.seed, r.mitigation_name) for r in recipes[:4]] == [
        ("random", "50%", 0, "none"), ("random", "50%", 0, "groupdro"),
        ("random", "50%", 1, "none"), ("random", "50%", 1, "groupdro")]
    assert [r.diagnostics for r in recipes[:4]] == [("grad", "attr"), ("grad",), (), ()]
    assert {(r.snl, r.finetune) for r in recipes} == {(GROUPDRO.snl, GROUPDRO.finetune)}
    assert {r.mitigation for r in recipes} == {None, MitigationConfig(method="groupdro", eta=0.05)}


def test_each_run_of_a_chunk_stores_its_recipe_and_its_mitigation_by_name():
    grid, _ = normalize_grid(AuditGrid(TOY, methods=("random",), budgets=("50%",), seeds=(3,), recipe=GROUPDRO,
                                       diagnostics=(), detail=()))
    chunk = run_chunk(grid, "random", 3)
    runs = chunk["tables"]["runs"]
    assert list(runs["mitigation"]) == ["none", "groupdro"]
    for run_id, recipe in zip(runs["run_id"], grid.recipes(), strict=True):
        stored = chunk["configs"][run_id]
        assert stored["checkpoint"] == "toy2d_mlp.safetensors" and "same masks" in stored["shared_masks"]
        config = {k: v for k, v in stored.items() if k not in ("checkpoint", "shared_masks")}
        assert config == json.loads(json.dumps(recipe.to_dict()))
        assert LinearizeRecipe.from_dict(config) == recipe.validate()


def test_manifests_written_before_recipes_identify_their_grid(tmp_path):
    default, _ = normalize_grid(AuditGrid(DIGITS))
    record = grid_record(default)
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    shutil.copy(REPO_AUDIT / "meta.json", shipped / "meta.json")  # grid keys: snl_epochs, finetune_epochs, mu
    assert "snl_epochs" in json.loads((shipped / "meta.json").read_text())["grid"]
    assert _other_results(shipped, record) == ""  # the shipped audit is the default grid
    old = {**json.loads((shipped / "meta.json").read_text())["grid"], "finetune_epochs": 3, "mitigation": "reweight"}
    (shipped / "meta.json").write_text(json.dumps({"grid": old}))
    assert _other_results(shipped, record) == (
        "a different audit grid (finetune epochs 3 there, 20 asked; mitigation method 'reweight' there, "
        "'lagrangian' asked)")
    assert migrate_manifest(record) == record
