"""FairLin dashboard entry point: ``streamlit run app.py``.

Builds the navigation over the page files in ``pages/`` and the global sidebar state (data root)
that every page reads from ``st.session_state``.
"""

import streamlit as st

st.set_page_config(page_title="FairLin", page_icon=":material/balance:", layout="wide")

with st.sidebar:
    st.session_state.setdefault("data_root", "")
    st.text_input("Data root", key="data_root", placeholder="$FAIRLIN_DATA_ROOT or ./data",
                  help="Folder holding CIFAR-10, SVHN, UTKFace or your own images in their standard layouts. "
                       "The embedded datasets (digits, toy2d) need nothing.")

navigation = st.navigation([st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)])
navigation.run()
