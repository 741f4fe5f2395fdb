"""Home: which datasets are available with their group sizes, and the shipped base checkpoints."""

import streamlit as st

from fairlin_core.checkpoints.catalog import checkpoint_group_table, checkpoint_table
from fairlin_core.data import list_datasets, load_dataset
from ui.errors import show_error
from fairlin_core.viz.figures import group_accuracy_figure, group_sizes_figure
from ui.shell import require_shell

require_shell()


@st.cache_data(show_spinner="Loading dataset…")
def dataset_sizes(name: str, data_root: str | None):
    bundle = load_dataset(name, data_root=data_root)
    return bundle.group_sizes(), bundle.describe()


st.title("FairLin")
st.markdown("Audit who pays when ReLUs are linearized for private inference: pick a dataset and its protected "
            "groups, a base checkpoint and a ReLU budget, and compare per-group accuracy.")

data_root = st.session_state.get("data_root") or None
datasets = list_datasets(data_root)

st.header("Datasets")
st.dataframe([{"dataset": d["name"], "available": d["available"], "note": d["reason"]} for d in datasets],
             hide_index=True, width="stretch")
available = [d["name"] for d in datasets if d["available"]]
chosen = st.selectbox("Show group sizes of", available, key="home_dataset")
if chosen:
    try:
        sizes, info = dataset_sizes(chosen, data_root)
    except Exception as error:  # every error: one readable message, never a traceback
        show_error(error)
    else:
        st.caption(f"target: {info['target']} · protected group: {info['group']} · "
                   f"input shape: {tuple(info['input_shape'])} · skipped files: {info['skipped']}")
        st.plotly_chart(group_sizes_figure(sizes, f"{chosen}: examples per group and split"), width="stretch")

st.header("Shipped base checkpoints")
checkpoints = checkpoint_table()
if checkpoints.empty:
    st.info("No checkpoints in checkpoints/. Regenerate them with the commands in checkpoints/MANIFEST.json.")
else:
    st.dataframe(checkpoints.drop(columns=["path"]), hide_index=True, width="stretch",
                 column_config={"overall_accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "worst_group_accuracy": st.column_config.NumberColumn(format="%.3f")})
    groups = checkpoint_group_table()
    for name, table in groups[groups["split"] == "test"].groupby("checkpoint", sort=False):
        st.plotly_chart(group_accuracy_figure(table, f"{name}: test accuracy per group"), width="stretch",
                        key=f"acc_{name}")
