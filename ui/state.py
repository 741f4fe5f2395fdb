"""The global choices made in the sidebar (dataset, group attribute, base checkpoint, data root).

app.py mirrors the sidebar widgets into plain ``fl_*`` session keys, which survive page changes
even where a widget's own state would be cleaned up; pages read them through :func:`current`,
which falls back to the embedded defaults.
"""

import streamlit as st

from fairlin_core.data import get_spec
from ui.checkpoint_views import checkpoint_choices, user_checkpoint_dir


def current() -> dict:
    """{"dataset", "group", "checkpoint" (label or None), "checkpoint_path" (or None), "data_root"}."""
    state = st.session_state
    dataset = state.get("fl_dataset") or "digits"
    group = state.get("fl_group") or get_spec(dataset).default_group
    path = state.get("fl_checkpoint_path", "unset")
    label = state.get("fl_checkpoint")
    if path == "unset":
        choices = checkpoint_choices(user_checkpoint_dir(), dataset)
        label = next(iter(choices), None)
        path = choices.get(label) if label else None
    return {"dataset": dataset, "group": group, "checkpoint": label, "checkpoint_path": path,
            "data_root": state.get("fl_data_root") or state.get("data_root") or None}


def remember(dataset: str, group: str, checkpoint: str | None, checkpoint_path: str | None, data_root: str | None):
    """Store the sidebar's choices under the plain ``fl_*`` keys."""
    st.session_state.update(fl_dataset=dataset, fl_group=group, fl_checkpoint=checkpoint,
                            fl_checkpoint_path=checkpoint_path, fl_data_root=data_root)
