"""Every page runs inside app.py's shell (navigation, sidebar, wide layout).

On a fresh server, Streamlit's very first run of a deep link such as ``/audit`` takes its legacy
route for a ``pages/`` folder: it runs the page file alone, before app.py has ever called
``st.navigation``. app.py calls :func:`enter_shell` before it runs a page; :func:`require_shell`,
called first by every page, notices a page run without it and reruns through app.py, whose
navigation then opens the same page properly.
"""

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

_entered = False

# under ~1,000 px wide (a narrow window, a tablet) rows of charts, of page links and of forms with sliders (the
# Linearize and Toy lab forms) stack into one column; Streamlit's own columns only stack below 640 px. Figures fix no width, so each then takes the full width; page links wrap rather than being cut.
NARROW_SCREEN_CSS = """<style>
@media (max-width: 1000px) {
  [data-testid="stHorizontalBlock"]:has(.stPlotlyChart),
  [data-testid="stHorizontalBlock"]:has([data-testid="stPageLink"]),
  [data-testid="stHorizontalBlock"]:has([data-testid="stSlider"]) { flex-direction: column; }
  [data-testid="stHorizontalBlock"]:has(.stPlotlyChart) > [data-testid="stColumn"],
  [data-testid="stHorizontalBlock"]:has([data-testid="stPageLink"]) > [data-testid="stColumn"],
  [data-testid="stHorizontalBlock"]:has([data-testid="stSlider"]) > [data-testid="stColumn"] {
    width: 100% !important; flex: 1 1 100% !important; min-width: 100% !important; }
}
[data-testid="stPageLink"] p { white-space: normal; overflow: visible; text-overflow: clip; }
</style>"""


def narrow_screen_style() -> None:
    """Called by app.py on every run: the narrow-screen layout rule above."""
    st.html(NARROW_SCREEN_CSS)


def enter_shell() -> None:
    """Called by app.py: from now on this server process builds its navigation itself."""
    global _entered
    _entered = True


def require_shell() -> None:
    if not _entered and PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False  # what st.navigation itself sets on its first call
        st.rerun()
