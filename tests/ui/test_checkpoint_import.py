"""The Models & data page's "Import a checkpoint" form and its view model (ui/checkpoint_views.py)."""

import io

import pytest
import torch
from streamlit.testing.v1 import AppTest

from conftest import APP
from fairlin_core.checkpoints import load_checkpoint
from fairlin_core.errors import FairLinError
from fairlin_core.models import build_model, resolve_spec
from ui import checkpoint_views


def _pth(model) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state_dict": {k: v for k, v in model.state_dict().items() if not k.endswith(".alpha")}}, buffer)
    return buffer.getvalue()


def test_import_upload_validates_before_storing(tmp_path):
    model = build_model(resolve_spec("resnet18", 10, (1, 8, 8), width=8))
    data = _pth(model)
    with pytest.raises(FairLinError, match="import refused: .*mine.pth.tar is not a torchvision checkpoint"):
        checkpoint_views.import_upload("mine.pth.tar", data, "torchvision", "resnet18", "digits", tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing stored after a failed validation
    with pytest.raises(FairLinError, match="never runs model code"):
        checkpoint_views.import_upload("mine.pth.tar", data, "state-dict", "code", "digits", tmp_path)
    path = checkpoint_views.import_upload("mine.pth.tar", data, "state-dict", "resnet18", "digits", tmp_path)
    stored = load_checkpoint(path)
    assert stored.sidecar["imported_from"]["source"] == "mine.pth.tar" and stored.spec.options["width"] == 8
    assert "mine" in set(checkpoint_views.checkpoints_overview(tmp_path)["checkpoint"])
    with pytest.raises(FairLinError, match="already exists"):
        checkpoint_views.import_upload("mine.pth.tar", data, "state-dict", "resnet18", "digits", tmp_path)


def test_models_page_lists_formats_and_what_is_not_supported():
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("pages/models_data.py").run()
    assert not at.exception and not at.error
    assert "Import a checkpoint" in [h.value for h in at.header]
    formats = next(d.value for d in at.dataframe if "format" in d.value.columns)
    assert list(formats["format"]) == ["snl", "deepreduce", "torchvision", "state-dict"]
    assert any("Not supported here" in c.value for c in at.caption)
    at.selectbox(key="models_data.import_format").set_value("torchvision").run()
    assert at.selectbox(key="models_data.import_arch").options == ["resnet18", "resnet34"]
