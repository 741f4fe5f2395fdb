"""Plotly figures drawn from FairLin's tidy tables (shared by the dashboard pages; no streamlit here)."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

SPLIT_ORDER = ["train", "val", "test", "balanced"]


def group_sizes_figure(sizes: pd.DataFrame, title: str = "Group sizes per split") -> go.Figure:
    """Grouped bars of ``n`` per group, one colour per split (columns split, group, n)."""
    splits = [s for s in SPLIT_ORDER if s in set(sizes["split"])]
    fig = px.bar(sizes, x="group", y="n", color="split", barmode="group", text="n",
                 category_orders={"split": splits, "group": list(dict.fromkeys(sizes["group"]))},
                 labels={"n": "examples", "group": "group"}, title=title)
    fig.update_traces(textposition="outside", cliponaxis=False)
    fig.update_xaxes(type="category")
    fig.update_layout(legend_title_text="split", margin={"t": 60, "b": 40})
    return fig


def group_accuracy_figure(table: pd.DataFrame, title: str = "Accuracy per group") -> go.Figure:
    """Bars of accuracy (%) per group, one colour per checkpoint (columns checkpoint, group, n, accuracy)."""
    data = table.assign(accuracy_pct=100 * table["accuracy"],
                        label=[f"{a:.1%}" for a in table["accuracy"]],
                        group_label=[f"{g} (n={n})" for g, n in zip(table["group"], table["n"])])
    fig = px.bar(data, x="group", y="accuracy_pct", color="checkpoint", barmode="group", text="label",
                 hover_data={"n": True, "group_label": False, "accuracy_pct": ":.2f"},
                 labels={"accuracy_pct": "accuracy (%)", "group": "group"}, title=title)
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 105])
    fig.update_traces(textposition="outside", cliponaxis=False)
    fig.update_layout(margin={"t": 60, "b": 40})
    return fig
