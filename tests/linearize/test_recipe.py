"""LinearizeRecipe: one typed, JSON-round-trippable value for how a model is linearized."""

import json

import pytest

from fairlin_core.errors import FairLinError
from fairlin_core.finetune import FinetuneConfig, MitigationConfig
from fairlin_core.linearizers import DeepReduceConfig, LinearizeOptions, LinearizeRecipe, SNLConfig


def test_a_recipe_round_trips_through_json_and_fills_sparse_sections():
    recipe = LinearizeRecipe.from_dict({"method": "snl", "budget": " 5 %", "seed": 2, "snl": {"epochs": 30},
                                        "finetune": {"epochs": 10, "select": "worst-group"},
                                        "mitigation": "groupdro", "diagnostics": ["grad"]})
    assert recipe.budget == "5%" and recipe.snl == SNLConfig(epochs=30)
    assert recipe.finetune == FinetuneConfig(epochs=10, select="worst-group")
    assert recipe.mitigation == MitigationConfig(method="groupdro") and recipe.mitigation_name == "groupdro"
    assert recipe.diagnostics == ("grad",)
    again = LinearizeRecipe.from_dict(json.loads(json.dumps(recipe.to_dict())))
    assert again == recipe


def test_older_mitigation_spellings_read_as_today():
    assert LinearizeRecipe.from_dict({"mitigation": "none"}).mitigation is None
    assert LinearizeRecipe.from_dict({"mitigation": None}).mitigation_name == "none"
    lagrangian = LinearizeRecipe.from_dict({"mitigation": {"mu": 0.05}}).mitigation
    assert lagrangian == MitigationConfig(method="lagrangian", mu=0.05)


def test_the_canonical_form_ignores_how_defaults_and_budgets_were_spelled():
    sparse = LinearizeRecipe.from_dict({"method": "random", "budget": "10%"})
    spelled = LinearizeRecipe(method="random", budget="10 %", snl=SNLConfig(), finetune=FinetuneConfig(epochs=20))
    assert sparse.canonical() == spelled.canonical()
    assert sparse.canonical()["budget"] == 0.1 and "precision" not in sparse.canonical()
    assert LinearizeRecipe(precision="bf16").canonical()["precision"] == "bf16"


def test_the_protocol_keeps_what_series_share_and_drops_what_varies_along_them():
    a = LinearizeRecipe(method="deepreduce", budget="1%", seed=3, snl=SNLConfig(epochs=30),
                        finetune=FinetuneConfig(epochs=10), mitigation=MitigationConfig(method="reweight"))
    b = LinearizeRecipe(method="random", budget=50, seed=0, finetune=FinetuneConfig(epochs=10),
                        mitigation=MitigationConfig(method="reweight"))
    assert a.protocol() == b.protocol()  # SNL's schedule is no part of a non-SNL run's protocol
    snl = LinearizeRecipe(method="snl", snl=SNLConfig(epochs=30), finetune=FinetuneConfig(epochs=10))
    assert snl.protocol() != LinearizeRecipe(method="snl", finetune=FinetuneConfig(epochs=10)).protocol()
    assert a.protocol() != LinearizeRecipe(method="deepreduce", finetune=FinetuneConfig(epochs=10)).protocol()


@pytest.mark.parametrize("data, fragment", [
    ({"budget_": 1}, "unknown recipe key(s) budget_"),
    ({"snl": {"epochs": "3"}}, "snl option epochs must be an integer"),
    ({"snl": {"epoch": 3}}, "unknown snl option(s) epoch"),
    ({"finetune": {"epochs": -1}}, "finetune epochs"),
    ({"mitigation": "fair"}, "unknown mitigation 'fair'"),
    ({"mitigation": {"method": "lagrangian", "mu": 0}}, "mitigation mu"),
    ({"budget": [1]}, "budget [1] has the wrong type"),
    ({"budget": "ten"}, "budget 'ten' is not a number"),
    ({"precision": "fp8"}, "precision must be one of fp32, bf16"),
    ({"method": "nope"}, "unknown method 'nope'"),
    ({"diagnostics": "grad"}, "diagnostics must be a list of names"),
    ([1], "a recipe must be a JSON object"),
])
def test_a_bad_recipe_is_one_clear_error(data, fragment):
    with pytest.raises(FairLinError) as caught:
        LinearizeRecipe.from_dict(data)
    assert fragment in str(caught.value)


def test_a_recipe_describes_its_training_and_names_every_option_off_its_default():
    from fairlin_core.linearizers.recipe import describe_mitigation
    assert LinearizeRecipe(mitigation=MitigationConfig(mu=0.05)).describe() == \
        "finetune 20 ep · SNL 100 ep · lagrangian mu 0.05"
    assert LinearizeRecipe(method="random", finetune=FinetuneConfig(epochs=10)).describe() == \
        "finetune 10 ep · plain finetune"  # SNL's schedule only for snl runs
    tuned = LinearizeRecipe(snl=SNLConfig(epochs=30, mask_lr=0.05), finetune=FinetuneConfig(lr=0.01, select="worst-group"),
                            mitigation=MitigationConfig(normalize=True, lambda_max=0.5), precision="bf16")
    assert tuned.describe() == ("finetune 20 ep lr 0.01 select worst-group · SNL 30 ep mask_lr 0.05 · "
                                "lagrangian mu 0.01 normalize lambda_max 0.5 · bf16")
    assert [describe_mitigation(m) for m in (None, MitigationConfig(method="reweight"),
                                             MitigationConfig(method="groupdro", eta=0.1))] == \
        ["none", "reweight", "groupdro eta 0.1"]
def test_numbers_are_typed_as_their_defaults_so_one_value_has_one_canonical_form():
    typed = LinearizeRecipe(finetune=FinetuneConfig(ce_weight=1), mitigation=MitigationConfig(mu=1, tolerance=0))
    read = LinearizeRecipe.from_dict({"finetune": {"ce_weight": 1.0}, "mitigation": {"mu": 1.0, "tolerance": 0.0}})
    assert json.dumps(typed.canonical(), sort_keys=True) == json.dumps(read.canonical(), sort_keys=True)
    assert isinstance(typed.validate().mitigation.mu, float)


def test_the_options_keep_placement_choices_and_take_the_recipes_schedule():
    recipe = LinearizeRecipe(snl=SNLConfig(epochs=30), finetune=FinetuneConfig(epochs=10), precision="bf16")
    placement = LinearizeOptions(snl=SNLConfig(epochs=2), exact=False, deepreduce=DeepReduceConfig((1,), True))
    options = recipe.options(placement)
    assert (options.snl, options.finetune, options.precision) == (recipe.snl, recipe.finetune, "bf16")
    assert options.exact is False and options.deepreduce == DeepReduceConfig((1,), True)
    assert recipe.options() == LinearizeOptions(snl=recipe.snl, finetune=recipe.finetune, precision="bf16")
