"""Home: "Start here" (the shipped audit's finding, measured from its results, and where to go next), the base
model per group on the balanced split, the datasets with their group sizes, and the shipped base checkpoints."""

import streamlit as st

from fairlin_core.checkpoints import checkpoint_group_table, checkpoint_table
from fairlin_core.data import list_datasets
from ui.checkpoint_views import accuracy_on_default_split, dataset_group_style
from ui.datasets import dataset_facts
from ui.errors import show_error
from fairlin_core.viz import base_accuracy_bars, group_accuracy_figure, group_sizes_figure
from ui.results_source import SHIPPED_AUDIT, group_style, load_shipped
from ui.shell import require_shell
from ui.state import current

require_shell()


@st.cache_resource(show_spinner=False, max_entries=8)
def sizes_chart(name: str, data_root: str | None):
    """The group sizes of dataset ``name`` per split, built once (st.plotly_chart only reads it)."""
    sizes = dataset_facts(name, data_root)[0]
    return group_sizes_figure(sizes, f"{name}: examples per group, every split", dataset_group_style(sizes))


@st.cache_resource(show_spinner=False, max_entries=8)
def checkpoint_charts(data_root: str | None) -> dict:
    """{checkpoint: its per-group accuracy chart} of the shipped checkpoints (their sidecars), built once."""
    charts = {}
    for name, table in checkpoint_group_table().groupby("checkpoint", sort=False):
        try:
            sizes = dataset_facts(table["dataset"].iloc[0], data_root)[0]
        except Exception:  # a dataset that is not available here: the chart draws no minority
            sizes = None
        split, shown = accuracy_on_default_split(table, sizes)
        charts[name] = group_accuracy_figure(shown, f"{name}: accuracy per group · {split} split",
                                             dataset_group_style(sizes, shown["group"].tolist()))
    return charts


st.title("FairLin")
st.markdown("Audit who pays when ReLUs are linearized for private inference: pick a dataset and its protected "
            "groups, a base checkpoint and a ReLU budget, and compare per-group accuracy.")

st.header("Start here")
if (SHIPPED_AUDIT / "meta.json").is_file():
    shipped = load_shipped()
    split = shipped.default_split()
    headline = shipped.headline(split)
    if headline:
        st.success(f"**The shipped audit ({shipped.meta.get('checkpoint')} on {shipped.meta.get('dataset')}):** "
                   f"{headline['text']}")
    links = st.columns(2)  # material icons come from Streamlit's bundled font (emoji need a system font);
    # under 1,000 px the two columns stack (ui/shell.py) so that no label is cut
    links[0].page_link("pages/audit.py", label="Fairness audit: who pays, per budget and method",
                       icon=":material/bar_chart:")
    links[0].page_link("pages/why.py", label="Why: gradients, curvature, distance to the boundary",
                       icon=":material/troubleshoot:")
    links[1].page_link("pages/linearize.py", label="Linearize your own model", icon=":material/tune:")
    links[1].page_link("pages/toy_lab.py", label="Toy lab: the effect in 2-D", icon=":material/science:")
    st.plotly_chart(base_accuracy_bars(
        shipped.base_accuracy(split), group_style(shipped), f"Base model: accuracy per group · {split} split",
        f"{shipped.meta.get('checkpoint')}; 95% bootstrap intervals"), key="home.fig_base")
    st.caption(f"Minority groups (warm colours): {', '.join(shipped.minority_groups()) or 'none'}, those below "
               f"an equal share of the training set; n = test examples per group.")

data_root = current().data_root
datasets = list_datasets(data_root)

st.header("Datasets")
st.dataframe([{"dataset": d["name"], "available": d["available"], "note": d["reason"]} for d in datasets],
             hide_index=True, width="stretch")
available = [d["name"] for d in datasets if d["available"]]
chosen = st.selectbox("Show group sizes of", available, key="home.dataset")
if chosen:
    try:
        sizes, info = dataset_facts(chosen, data_root)
    except Exception as error:  # every error: one readable message, never a traceback
        show_error(error)
    else:
        st.caption(f"target: {info['target']} · protected group: {info['group']} · "
                   f"input shape: {tuple(info['input_shape'])} · skipped files: {info['skipped']}")
        st.plotly_chart(sizes_chart(chosen, data_root), width="stretch")

st.header("Shipped base checkpoints")
checkpoints = checkpoint_table()
if checkpoints.empty:
    st.info("No checkpoints in checkpoints/. Regenerate them with the commands in checkpoints/MANIFEST.json.")
else:
    st.dataframe(checkpoints.drop(columns=["path"]), hide_index=True, width="stretch",
                 column_config={"overall_accuracy": st.column_config.NumberColumn(format="%.3f"),
                                "worst_group_accuracy": st.column_config.NumberColumn(format="%.3f")})
    for name, figure in checkpoint_charts(data_root).items():
        st.plotly_chart(figure, width="stretch", key=f"home.acc_{name}")
