"""Plotly figures of datasets, checkpoints and jobs drawn from FairLin's tidy tables (shared by the dashboard
pages; no streamlit here), in the conventions of :mod:`fairlin_core.viz.audit_figures` (one colour per group,
legends below)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from fairlin_core.viz.audit_figures import GroupStyle, group_bars

SPLIT_ORDER = ["train", "val", "test", "balanced"]


def group_sizes_figure(sizes: pd.DataFrame, title: str = "Group sizes per split",
                       style: GroupStyle | None = None) -> go.Figure:
    """Examples per group in every split (x: the splits in protocol order), one bar per group in its colour
    (``style``; None = the table's groups, none a minority), the count in the hover.

    sizes: columns split, group, n (:meth:`DatasetBundle.group_sizes`); the legend gives each group's class
    and training-set size.
    """
    style = style or GroupStyle.of(list(dict.fromkeys(sizes["group"].astype(str))))
    splits = [s for s in SPLIT_ORDER if s in set(sizes["split"])]
    table = sizes.astype({"group": str})
    train = table[table["split"] == "train"][["group", "n"]].rename(columns={"n": "train_n"})
    table = table[table["split"].isin(splits)].merge(train, on="group", how="left")
    table = table.assign(_s=table["split"].map(splits.index)).sort_values("_s").drop(columns="_s")
    return group_bars(table.rename(columns={"n": "examples"}), style, x="split", y="examples", title=title,
                      y_title="examples", x_title="split", unit=" examples", hover_format=",.0f")


def group_accuracy_figure(table: pd.DataFrame, title: str = "Accuracy per group",
                          style: GroupStyle | None = None) -> go.Figure:
    """Accuracy (%) per group of one or more checkpoints (x: the checkpoints), one bar per group in its colour
    (``style``; None = the table's groups, none a minority); hovers give the accuracy to one decimal and the
    group's test n.

    table: columns checkpoint, group, n, accuracy (a fraction) and optionally train_n (for the legend).
    """
    table = table.astype({"group": str})
    style = style or GroupStyle.of(list(dict.fromkeys(table["group"])))
    fig = group_bars(table, style, x="checkpoint", y="accuracy", title=title, y_title="accuracy (%)", scale=100.0,
                     x_title="checkpoint", unit="%")
    fig.update_yaxes(range=[0, 105])
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
