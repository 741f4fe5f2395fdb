"""fl.compare runs one recipe at every budget and seed, plain against its mitigation (given by name)."""

import pandas as pd
import pytest

import fairlin_core as fl
from fairlin_core.errors import FairLinError
from fairlin_core.finetune import FinetuneConfig, MitigationConfig
from fairlin_core.linearizers import LinearizeRecipe


def test_a_recipe_and_the_keywords_that_spell_it_compare_the_same(toy_checkpoint):
    recipe = LinearizeRecipe(method="random", finetune=FinetuneConfig(epochs=1),
                             mitigation=MitigationConfig(method="groupdro", eta=0.05))
    by_recipe = fl.compare(toy_checkpoint, recipe=recipe, budgets=[16], seeds=[0, 1])
    spelled = fl.compare(toy_checkpoint, "random", [16], seeds=[0, 1], finetune_epochs=1,
                         mitigation={"method": "groupdro", "eta": 0.05})
    pd.testing.assert_frame_equal(by_recipe.runs, spelled.runs)
    assert set(by_recipe.runs["variant"]) == {"unmitigated", "mitigated"}
    plain = fl.compare(toy_checkpoint, "random", [16], seeds=[0, 1], finetune_epochs=1, mitigation="reweight")
    mitigated = by_recipe.runs[by_recipe.runs["variant"] == "mitigated"]["accuracy"].to_numpy()
    assert (plain.runs[plain.runs["variant"] == "mitigated"]["accuracy"].to_numpy() != mitigated).any()
    with pytest.raises(FairLinError, match="compare sets a mitigated finetune against the plain one"):
        fl.compare(toy_checkpoint, recipe=LinearizeRecipe(method="random"), budgets=[16])
