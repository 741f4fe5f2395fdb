"""Form state that survives a reload: widget values mirrored into the page's query parameters
(st.query_params) and read back into st.session_state when a fresh session opens the page."""

from collections.abc import Callable
from typing import Any

import streamlit as st


def restore(fields: dict[str, Callable[[str], Any]]) -> None:
    """For every widget key of ``fields`` (key -> parser of its query-parameter text) that the session does not
    hold yet, take its value from the query parameters; unparsable values are ignored."""
    for key, parse in fields.items():
        if key in st.session_state or key not in st.query_params:
            continue
        try:
            st.session_state[key] = parse(st.query_params[key])
        except (TypeError, ValueError):
            continue


def persist(fields: dict[str, Callable[[Any], str]]) -> None:
    """Write the current value of every widget key of ``fields`` (key -> formatter to text) into the query
    parameters (only those that changed, so the URL is not rewritten on every rerun)."""
    for key, text in fields.items():
        if key not in st.session_state:
            continue
        value = text(st.session_state[key])
        if st.query_params.get(key) != value:
            st.query_params[key] = value
