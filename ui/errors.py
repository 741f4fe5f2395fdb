"""Errors on the page: every failure of a user action is one readable message (st.error), never a traceback.

A :class:`~fairlin_core.errors.FairLinError` is bad input and shows its own message. Anything else is a
bug: the page shows its type and a shortened message, and the full traceback goes to the terminal
running the dashboard.
"""

import sys
import traceback

import streamlit as st

from fairlin_core.errors import FairLinError, one_line


def readable(error: BaseException) -> str:
    """The one-paragraph message a page shows for ``error``."""
    if isinstance(error, FairLinError):
        return str(error)
    return (f"Something went wrong ({type(error).__name__}: {one_line(str(error), 300)}). This is a bug in "
            f"FairLin, not in your input; the terminal running the dashboard has the details.")


def show_error(error: BaseException) -> None:
    """``st.error`` with :func:`readable`; a bug's traceback is printed to stderr (the server's terminal)."""
    if not isinstance(error, FairLinError):
        traceback.print_exception(error, file=sys.stderr)
    st.error(readable(error))
