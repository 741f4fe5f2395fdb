"""Shared test constants and fixtures. The layout mirrors the package (tests/<wing>/test_*.py); tests
import the constants with ``from conftest import DIGITS, TOY, ...``. Markers (pyproject.toml): ``slow``
(more than ~20 s on 2 cores) and ``browser`` (Playwright + Debian chromium)."""

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "app.py")
DIGITS = str(REPO / "checkpoints" / "digits_resnet18.safetensors")  # the shipped digits ResNet18 (width 16)
TOY = str(REPO / "checkpoints" / "toy2d_mlp.safetensors")  # the shipped toy2d MLP (2 x 16)


@pytest.fixture(scope="session")
def digits_checkpoint():
    """The shipped digits base checkpoint, loaded once (treat as read-only)."""
    from fairlin_core.checkpoints import load_checkpoint
    return load_checkpoint(DIGITS)


@pytest.fixture(scope="session")
def toy_checkpoint():
    """The shipped toy2d base checkpoint, loaded once (treat as read-only)."""
    from fairlin_core.checkpoints import load_checkpoint
    return load_checkpoint(TOY)


def without_dac_override(argv):
    """``argv`` run so that file permissions apply even to root (setpriv drops CAP_DAC_OVERRIDE)."""
    if os.geteuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: permissions cannot be made to apply")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--inh-caps", "-all", "--", *argv]
