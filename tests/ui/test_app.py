"""Dashboard home page through Streamlit's AppTest (real script run, real engine calls)."""


import pytest
from streamlit.testing.v1 import AppTest
from conftest import APP



@pytest.fixture
def app(monkeypatch, tmp_path):
    monkeypatch.setenv("FAIRLIN_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("FAIRLIN_STORE", str(tmp_path / "store"))  # the sidebar jobs panel opens the run store
    return AppTest.from_file(APP, default_timeout=60)


def test_home_lists_datasets_group_sizes_and_checkpoints(app):
    app.run()
    assert not app.exception
    assert app.title[0].value == "FairLin"
    datasets = app.dataframe[0].value
    assert set(datasets["dataset"]) == {"digits", "toy2d", "cifar10", "svhn", "utkface", "folder"}
    assert bool(datasets.set_index("dataset").loc["digits", "available"])
    assert not bool(datasets.set_index("dataset").loc["cifar10", "available"])
    assert app.selectbox(key="home.dataset").value == "digits"
    checkpoints = app.dataframe[1].value
    assert {"digits_resnet18", "toy2d_mlp"} <= set(checkpoints["checkpoint"])
    charts = app.get("plotly_chart")
    assert len(charts) == 4  # "Start here" base-model bars, group sizes, one accuracy chart per checkpoint
    assert charts[0].key == "home.fig_base"


def test_switching_dataset_redraws_group_sizes(app):
    app.run()
    app.selectbox(key="home.dataset").set_value("toy2d").run()
    assert not app.exception
    assert any("target: class" in caption.value for caption in app.caption)


def test_malformed_dataset_gives_a_readable_message_not_a_traceback(app, tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not a pickle")
    app.run()
    assert bool(app.dataframe[0].value.set_index("dataset").loc["cifar10", "available"])
    app.selectbox(key="home.dataset").set_value("cifar10").run()
    assert not app.exception
    assert "data_batch_1" in app.error[0].value
    assert [c.key for c in app.get("plotly_chart")] == [  # still drawn
        "home.fig_base", "home.acc_digits_resnet18", "home.acc_toy2d_mlp"]
