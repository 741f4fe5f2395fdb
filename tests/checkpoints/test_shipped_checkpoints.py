"""The shipped base checkpoints load safely, match their manifest and reach their accuracy."""

import pytest

from fairlin_core.checkpoints.catalog import SHIPPED_CHECKPOINTS, checkpoint_group_table, checkpoint_table, manifest
from fairlin_core.audits.evaluation import evaluate_checkpoint


def test_manifest_lists_every_shipped_checkpoint_with_its_command():
    entries = manifest()
    files = {entry["file"] for entry in entries}
    assert files == {p.name for p in SHIPPED_CHECKPOINTS.glob("*.safetensors")}
    for entry in entries:
        assert entry["command"].startswith("python -m fairlin_core train-base")
        assert f"--out checkpoints/{entry['file']}" in entry["command"]
    assert sum(p.stat().st_size for p in SHIPPED_CHECKPOINTS.iterdir()) < 20 * 1024 * 1024


@pytest.mark.parametrize("name", ["digits_resnet18", "toy2d_mlp"])
def test_recorded_accuracy_is_reproduced_by_evaluation(name):
    recorded = checkpoint_table().set_index("checkpoint").loc[name]
    result = evaluate_checkpoint(SHIPPED_CHECKPOINTS / f"{name}.safetensors")
    assert result["overall_accuracy"] == pytest.approx(recorded["overall_accuracy"], abs=1e-9)
    assert result["relu_count"] == recorded["relu_count"]


def test_digits_base_model_reaches_95_percent():
    result = evaluate_checkpoint(SHIPPED_CHECKPOINTS / "digits_resnet18.safetensors")
    assert result["overall_accuracy"] >= 0.95
    assert result["relu_count"] == 7680
    groups = checkpoint_group_table()
    digits = groups[groups["checkpoint"] == "digits_resnet18"]
    assert set(digits["split"]) == {"test", "balanced"}
    assert len(digits[digits["split"] == "test"]) == 10
