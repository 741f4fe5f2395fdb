"""FairLin dashboard entry point: ``streamlit run app.py``.

Builds the navigation over the page files in ``pages/`` and the global sidebar state that every page
reads through ``ui.state.current()``: data root, dataset, group attribute and base checkpoint (sidebar
widget keys ``data_root``, ``dataset``, ``group_attribute``, ``base_checkpoint``, mirrored into plain
``fl_*`` keys), plus a compact jobs panel.
"""

import streamlit as st

from fairlin_core.data import get_spec, list_datasets
from ui.checkpoint_views import checkpoint_choices, user_checkpoint_dir
from ui.jobs_panel import compact_jobs_panel
from ui.shell import enter_shell, narrow_screen_style
from ui.state import Choice, current, remember

st.set_page_config(page_title="FairLin", page_icon="⚖️", layout="wide")  # an emoji favicon is drawn locally; a
# ":material/...:" favicon would be fetched from fonts.gstatic.com (nav and button icons use the bundled font)

narrow_screen_style()
previous = current()
with st.sidebar:
    st.session_state.setdefault("sidebar.data_root", previous.data_root or "")
    st.text_input("Data root", key="sidebar.data_root", placeholder="$FAIRLIN_DATA_ROOT or ./data",
                  help="Folder holding CIFAR-10, SVHN, UTKFace or your own images in their standard layouts. "
                       "The embedded datasets (digits, toy2d) need nothing.")
    data_root = st.session_state.get("sidebar.data_root") or None
    available = [d["name"] for d in list_datasets(data_root) if d["available"]]
    if st.session_state.get("sidebar.dataset") not in available:  # first run, or a widget state cleaned up
        st.session_state["sidebar.dataset"] = previous.dataset if previous.dataset in available else available[0]
    st.selectbox("Dataset", available, key="sidebar.dataset", help="Datasets whose files are present (see Home).")
    spec = get_spec(st.session_state["sidebar.dataset"])
    attributes = list(spec.attributes or [spec.default_group])
    if st.session_state.get("sidebar.group_attribute") not in attributes:
        st.session_state["sidebar.group_attribute"] = (previous.group if previous.group in attributes
                                               else spec.default_group)
    st.selectbox("Group attribute", attributes, key="sidebar.group_attribute",
                 help="The protected attribute whose groups are compared.")
    choices = checkpoint_choices(user_checkpoint_dir(), st.session_state["sidebar.dataset"])
    if choices:
        if st.session_state.get("sidebar.base_checkpoint") not in choices:
            st.session_state["sidebar.base_checkpoint"] = (previous.checkpoint if previous.checkpoint in choices
                                                   else next(iter(choices)))
        st.selectbox("Base checkpoint", list(choices), key="sidebar.base_checkpoint")
    else:
        st.caption("No base checkpoint for this dataset yet: upload or train one on Models & data.")
    label = st.session_state.get("sidebar.base_checkpoint") if choices else None
    remember(Choice(st.session_state["sidebar.dataset"], st.session_state["sidebar.group_attribute"], label,
                    choices.get(label), data_root))
    compact_jobs_panel()

navigation = st.navigation([
    st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/models_data.py", title="Models & data", icon=":material/database:"),
    st.Page("pages/linearize.py", title="Linearize", icon=":material/tune:"),
    st.Page("pages/audit.py", title="Fairness audit", icon=":material/bar_chart:"),
    st.Page("pages/why.py", title="Why (diagnostics)", icon=":material/troubleshoot:"),
    st.Page("pages/toy_lab.py", title="Toy lab", icon=":material/science:"),
])
enter_shell()
navigation.run()
