"""The one registry behind linearizers, checkpoint formats and mitigations: order, reserved names, messages."""

import pytest

from fairlin_core.checkpoints.importers import FORMATS
from fairlin_core.errors import CheckpointError, FairLinError
from fairlin_core.finetune.fair import MITIGATIONS
from fairlin_core.linearizers.base import LINEARIZERS
from fairlin_core.registry import Registry


def test_registry_keeps_order_refuses_taken_and_reserved_names_and_names_the_valid_ones():
    things = Registry("widget", unknown="kind", error=CheckpointError, reserved=("none",))
    assert things.register("b", 2) == 2 and things.register("a", 1) == 1
    assert list(things) == ["b", "a"] and things.names() == ("none", "b", "a") and things.lookup("a") == 1
    for taken in ("a", "none"):
        with pytest.raises(CheckpointError, match=f"a widget named '{taken}' is already registered"):
            things.register(taken, 3)
    with pytest.raises(CheckpointError, match=r"unknown kind 'c'; expected one of none, b, a"):
        things.lookup("c")
    with pytest.raises(CheckpointError, match="unknown kind 3"):
        things.lookup(3)
    twin = things.copy()
    twin.register("c", 3)
    assert "c" not in things and twin.names() == ("none", "b", "a", "c") and twin.error is CheckpointError


def test_the_three_families_use_it():
    assert list(LINEARIZERS) == ["snl", "deepreduce", "random"]
    assert MITIGATIONS.names() == ("none", "lagrangian", "reweight", "groupdro")
    with pytest.raises(CheckpointError, match="unknown checkpoint format 'onnx'; expected one of snl, deepreduce"):
        FORMATS.lookup("onnx")
    with pytest.raises(FairLinError, match="a mitigation named 'none' is already registered"):
        MITIGATIONS.register("none", lambda bundle, config: None)
