"""Results of any age read in today's shape (audit/migration.py): every run's config holds its recipe and the runs
table names its mitigation method; on the shipped default audit (read, never written), on results without configs
(the grid manifest's recipe) and on a run store written by today's code (sparse job configs)."""

import hashlib
import json
import shutil

import pandas as pd
import pytest

from fairlin_core.audits.migration import RECIPE_KEYS, migrate
from fairlin_core.audits.results import SHIPPED_AUDIT, load_results
from fairlin_core.errors import FairLinError
from fairlin_core.finetune import MitigationConfig
from fairlin_core.jobs import JobManager, collect_from_store
from fairlin_core.linearizers import LinearizeRecipe
from conftest import TOY, job_config


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_the_shipped_audit_reads_as_recipes_and_saves_in_the_new_shape(tmp_path):
    before = _digests(SHIPPED_AUDIT)
    on_disk = pd.read_parquet(SHIPPED_AUDIT / "runs.parquet")
    assert set(on_disk["mitigation"]) == {"off", "on"} and "mu" in on_disk  # the older shape, as shipped
    shipped = load_results(SHIPPED_AUDIT)
    assert _digests(SHIPPED_AUDIT) == before  # reading never writes there
    runs = shipped.runs.set_index("run_id")
    assert "mu" not in runs and set(runs["mitigation"]) == {"none", "lagrangian"}
    assert (runs["mitigation"] == "lagrangian").eq(on_disk.set_index("run_id")["mitigation"] == "on").all()
    config = shipped.configs["snl-1%-seed2-mit-on"]
    assert config["checkpoint"] == "digits_resnet18.safetensors" and "shared_masks" in config
    recipe = LinearizeRecipe.from_dict({k: config[k] for k in RECIPE_KEYS})
    assert config == {**config, **recipe.to_dict()}  # the recipe part is complete
    assert recipe.mitigation == MitigationConfig(method="lagrangian", mu=0.01)  # stored as {"mu", "tolerance"}
    assert (recipe.method, recipe.budget, recipe.seed, recipe.snl.epochs, recipe.finetune.epochs) == \
        ("snl", "1%", 2, 100, 20)
    assert shipped.run_recipes()["snl-1%-seed2-mit-on"] == recipe
    shipped.save(tmp_path / "again")  # the new shape, read back equal (migrating is idempotent)
    again = load_results(tmp_path / "again")
    assert json.loads((tmp_path / "again" / "configs.json").read_text()) == shipped.configs == again.configs
    pd.testing.assert_frame_equal(again.runs, shipped.runs)


def test_results_without_configs_take_each_recipe_from_the_grid_manifest(tmp_path):
    folder = shutil.copytree(SHIPPED_AUDIT, tmp_path / "bare")
    (folder / "configs.json").write_text("{}")
    bare = load_results(folder)
    shipped = load_results(SHIPPED_AUDIT)
    assert list(bare.runs["mitigation"]) == list(shipped.runs["mitigation"])
    for run_id, recipe in shipped.run_recipes().items():  # equal but for the diagnostics, which are not known
        assert bare.run_recipes()[run_id] == LinearizeRecipe.from_dict({**recipe.to_dict(), "diagnostics": []})
    assert bare.configs["snl-1%-seed2-mit-on"]["checkpoint"] == "digits_resnet18.safetensors"
    # a grid of another recipe: its epochs and mitigation method, mu from the runs table
    meta = json.loads((folder / "meta.json").read_text())
    meta["grid"].update(snl_epochs=30, finetune_epochs=10, mitigation="groupdro")
    (folder / "meta.json").write_text(json.dumps(meta))
    other = load_results(folder)
    [protocol] = other.protocols()
    assert protocol.describe() == "finetune 10 ep · SNL 30 ep · groupdro eta 0.01"
    assert set(other.runs["mitigation"]) == {"none", "groupdro"}


def test_flat_job_configs_older_spellings_and_bad_configs():
    runs = pd.DataFrame({"run_id": ["a", "b"], "method": ["random"] * 2, "budget": ["50%"] * 2, "seed": [0, 0]})
    older = {"checkpoint": "/x/toy.safetensors", "method": "random", "budget": 16, "seed": 0, "dataset": None,
             "data_root": None, "finetune": {"epochs": 1}, "mitigation": {"mu": 0.05, "tolerance": 0.0}}
    named, configs = migrate(runs, {"a": older, "b": {**older, "mitigation": "groupdro"}}, {})
    assert list(named["mitigation"]) == ["lagrangian", "groupdro"]
    assert configs["a"]["mitigation"] == {"method": "lagrangian", "mu": 0.05, "tolerance": 0.0, "normalize": False,
                                          "lambda_max": None, "eta": 0.01}
    assert configs["a"]["budget"] == 16 and configs["a"]["data_root"] is None and configs["a"]["finetune"]["epochs"] == 1
    again, same = migrate(named, configs, {})  # idempotent
    assert same == configs and again.equals(named)
    with pytest.raises(FairLinError, match="run b of these results: unknown mitigation 'magic'"):
        migrate(runs, {"a": older, "b": {**older, "mitigation": "magic"}}, {})


def test_a_store_written_by_todays_code_reads_as_recipes(tmp_path):
    manager = JobManager(tmp_path / "store", workers=1)
    try:
        sparse = [job_config(TOY, "random", 16, finetune={"epochs": 1}, mitigation=mitigation)
                  for mitigation in (None, {"mu": 0.05})]
        ids = [manager.submit(config) for config in sparse]
        assert manager.wait(ids, timeout=300)
        collected = collect_from_store(manager.store, TOY)
    finally:
        manager.shutdown()
    assert list(collected.runs.set_index("run_id").loc[ids, "mitigation"]) == ["none", "lagrangian"]
    for run_id, config in zip(ids, sparse):
        stored = collected.configs[run_id]
        job = config.validate().to_dict()  # the flat job config: a recipe + checkpoint, dataset, data root
        assert {k: stored[k] for k in ("checkpoint", "dataset", "data_root")} == \
            {k: job[k] for k in ("checkpoint", "dataset", "data_root")}
        assert collected.run_recipes()[run_id] == LinearizeRecipe.from_dict({k: job[k] for k in RECIPE_KEYS})
    [protocol] = collected.protocols()
    assert protocol.describe() == "finetune 1 ep · lagrangian mu 0.05"
