"""Dataset facts the pages show, loaded once per (dataset, group attribute, data root) and cached."""

import pandas as pd
import streamlit as st

from fairlin_core.data import get_spec, load_dataset


def dataset_facts(name: str, data_root: str | None, group: str | None = None) -> tuple[pd.DataFrame, dict]:
    """(:meth:`DatasetBundle.group_sizes` of every split, :meth:`DatasetBundle.describe`) of dataset ``name``
    grouped by ``group`` (None = its default group attribute: the same cached load as naming it)."""
    return _facts(name, data_root, group or get_spec(name).default_group)


@st.cache_data(show_spinner="Loading dataset…")
def _facts(name: str, data_root: str | None, group: str) -> tuple[pd.DataFrame, dict]:
    bundle = load_dataset(name, data_root=data_root, group=group)
    return bundle.group_sizes(), bundle.describe()
