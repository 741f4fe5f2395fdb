"""The global choices made in the sidebar (dataset, group attribute, base checkpoint, data root).

app.py stores them as one :class:`Choice` under a plain session key (:func:`remember`), which survives page
changes even where a widget's own state would be cleaned up; pages read it through :func:`current`, which
falls back to the embedded defaults before the sidebar has run.
"""

from dataclasses import dataclass

import streamlit as st

from fairlin_core.data import get_spec
from ui.checkpoint_views import checkpoint_choices, user_checkpoint_dir

CHOICE_KEY = "state.choice"


@dataclass(frozen=True)
class Choice:
    """What the sidebar has chosen: a dataset name, its group attribute, the base checkpoint's label and path
    (both None when the dataset has none yet) and the data root (None: ``$FAIRLIN_DATA_ROOT`` or ./data)."""

    dataset: str
    group: str
    checkpoint: str | None
    checkpoint_path: str | None
    data_root: str | None


def current() -> Choice:
    """The sidebar's last :class:`Choice`; before the sidebar has run, digits with its default group and first
    checkpoint."""
    remembered = st.session_state.get(CHOICE_KEY)
    if remembered is not None:
        return remembered
    choices = checkpoint_choices(user_checkpoint_dir(), "digits")
    label = next(iter(choices), None)
    return Choice("digits", get_spec("digits").default_group, label, choices.get(label) if label else None, None)


def remember(choice: Choice) -> None:
    """Store the sidebar's :class:`Choice` for :func:`current`."""
    st.session_state[CHOICE_KEY] = choice
