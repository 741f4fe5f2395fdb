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
                        label=[f"{a:.1%}" for a in table["accuracy"]])
    fig = px.bar(data, x="group", y="accuracy_pct", color="checkpoint", barmode="group", text="label",
                 hover_data={"n": True, "accuracy_pct": ":.2f"},
                 labels={"accuracy_pct": "accuracy (%)", "group": "group"}, title=title)
    fig.update_xaxes(type="category")
    fig.update_yaxes(range=[0, 105])
    fig.update_traces(textposition="outside", cliponaxis=False)
    fig.update_layout(margin={"t": 60, "b": 40})
    return fig


def job_curve_figure(curve: pd.DataFrame, title: str = "Training curve") -> go.Figure:
    """Loss (left axis) and ReLU count (right axis) per reported step of a job.

    curve: rows in report order with ``loss`` and/or ``relu_count`` and optionally ``stage`` (a live
    progress series or a finished run's history.csv).
    """
    from plotly.subplots import make_subplots
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    data = curve.reset_index(drop=True)
    step = data["step"] if "step" in data else pd.Series(range(1, len(data) + 1))
    stages = data["stage"] if "stage" in data else pd.Series(["run"] * len(data))
    if "loss" in data:
        for stage in dict.fromkeys(stages):
            part = data[stages == stage]
            fig.add_trace(go.Scatter(x=step[part.index], y=part["loss"], mode="lines+markers",
                                     name=f"loss ({stage})"), secondary_y=False)
    if "relu_count" in data and data["relu_count"].notna().any():
        part = data[data["relu_count"].notna()]
        fig.add_trace(go.Scatter(x=step[part.index], y=part["relu_count"], mode="lines+markers", name="ReLU count",
                                 line={"dash": "dot"}), secondary_y=True)
    fig.update_xaxes(title_text="epoch (all stages in order)")
    fig.update_yaxes(title_text="loss", secondary_y=False)
    fig.update_yaxes(title_text="ReLUs", secondary_y=True)
    fig.update_layout(title=title, height=280, margin={"t": 40, "b": 30, "l": 40, "r": 40},
                      legend={"orientation": "h", "y": -0.3})
    return fig
