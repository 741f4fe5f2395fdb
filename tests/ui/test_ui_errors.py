"""Every error of a user action is one readable st.error on the page, never a traceback (ui/errors.py)."""

from streamlit.testing.v1 import AppTest


def _page():
    from fairlin_core.errors import DatasetError
    from ui.errors import show_error
    for error in (DatasetError("bad input: expected X"), RuntimeError("CUDA out of memory\n" + "y" * 5000)):
        try:
            raise error
        except Exception as caught:  # what every page does around a user action
            show_error(caught)


def test_bad_input_and_bugs_are_readable_messages_not_tracebacks():
    at = AppTest.from_function(_page).run(timeout=30)
    assert not at.exception
    bad_input, bug = (e.value for e in at.error)
    assert bad_input == "bad input: expected X"
    assert bug.startswith("Something went wrong (RuntimeError: CUDA out of memory y") and "This is a bug" in bug
    assert len(bug) < 500 and "\n" not in bug
