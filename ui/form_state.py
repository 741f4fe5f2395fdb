"""Form state that survives a reload: widget values mirrored into the page's query parameters
(st.query_params) and read back into st.session_state when a fresh session opens the page.

A widget key carries its page's prefix (``linearize.budget_count``); the address bar names the field
without it, since the page is already the path (``/linearize?budget_count=154``)."""

from collections.abc import Callable
from typing import Any

import streamlit as st


def _param(key: str) -> str:
    """The query parameter of a widget key: the key without its page prefix."""
    return key.split(".", 1)[1]


def restore(fields: dict[str, Callable[[str], Any]]) -> None:
    """For every widget key of ``fields`` (key -> parser of its query-parameter text) that the session does not
    hold yet, take its value from the query parameters; unparsable values are ignored."""
    for key, parse in fields.items():
        if key in st.session_state or _param(key) not in st.query_params:
            continue
        try:
            st.session_state[key] = parse(st.query_params[_param(key)])
        except (TypeError, ValueError):
            continue


def persist(fields: dict[str, Callable[[Any], str]]) -> None:
    """Write the current value of every widget key of ``fields`` (key -> formatter to text) into the query
    parameters (only those that changed, so the URL is not rewritten on every rerun)."""
    for key, text in fields.items():
        if key not in st.session_state:
            continue
        value = text(st.session_state[key])
        if st.query_params.get(_param(key)) != value:
            st.query_params[_param(key)] = value
