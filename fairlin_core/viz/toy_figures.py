"""Plotly figures of the 2D toy lab (no streamlit here): boundaries, per-group accuracy, loss, B.1 picture."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from ..toy import BoundaryGrid, Piecewise1D
from .audit_figures import CLASS_COLORS, ERROR_COLOR, LOG_AXIS

MODEL_COLORS = {"relu": "#2ca02c", "linearized": "#ff7f0e"}
MODEL_LABELS = {"relu": "ReLU", "linearized": "linearized"}
BOUNDARY_SCALE = [[0.0, "#dbe9f6"], [0.5, "#ffffff"], [1.0, "#f7d4d4"]]
BOUNDARY_HEIGHT = 460  # px: the plane stays readable with its legend below


def boundary_figure(grid: BoundaryGrid, points: pd.DataFrame | None = None,
                    title: str = "Decision boundary") -> go.Figure:
    """Filled contour of P(minority) on ``grid`` with the decision boundary (P = 0.5) as a black line.

    points: a :func:`fairlin_core.toy.points_table` (x, y, class[, correct]); coloured by class,
    misclassified points (correct False) drawn as black-rimmed crosses.
    """
    fig = go.Figure(go.Contour(x=grid.xs, y=grid.ys, z=grid.proba, zmin=0, zmax=1, colorscale=BOUNDARY_SCALE,
                               contours={"start": 0, "end": 1, "size": 0.1}, line={"width": 0},
                               colorbar={"title": {"text": "P(minority)"}, "len": 0.8}, name="P(minority)",
                               hovertemplate="x=%{x:.2f}<br>y=%{y:.2f}<br>P(minority)=%{z:.2f}<extra></extra>"))
    fig.add_trace(go.Contour(x=grid.xs, y=grid.ys, z=grid.proba, showscale=False, hoverinfo="skip",
                             contours={"coloring": "none", "start": 0.5, "end": 0.5, "size": 1},
                             line={"color": "black", "width": 2}, name="boundary"))
    if points is not None:
        wrong = ~points["correct"] if "correct" in points else pd.Series(False, index=points.index)
        for name, color in CLASS_COLORS.items():
            members = points[(points["class"] == name) & ~wrong]
            fig.add_trace(go.Scatter(x=members["x"], y=members["y"], mode="markers", name=name,
                                     marker={"color": color, "size": 5, "opacity": 0.8}))
            missed = points[(points["class"] == name) & wrong]
            if len(missed):
                fig.add_trace(go.Scatter(x=missed["x"], y=missed["y"], mode="markers", name=f"{name}, misclassified",
                                         marker={"color": color, "size": 10, "symbol": "x",
                                                 "line": {"color": "black", "width": 1}}))
    x_min, x_max, y_min, y_max = grid.extent
    fig.update_xaxes(range=[x_min, x_max], constrain="domain", title="x")
    fig.update_yaxes(range=[y_min, y_max], scaleanchor="x", scaleratio=1, title="y")
    fig.update_layout(title=title, height=BOUNDARY_HEIGHT, margin={"t": 50, "b": 30, "l": 30, "r": 10},
                      legend={"orientation": "h", "y": -0.15})
    return fig


def accuracy_bars_figure(summary: pd.DataFrame, title: str = "Test accuracy per group") -> go.Figure:
    """Bars of mean accuracy (%) per group, ReLU vs linearized, with sd over seeds as error bars.

    summary: columns model, group, mean, sd (fractions), seeds, as :meth:`ToyResult.summary` returns.
    """
    data = summary.assign(mean_pct=100 * summary["mean"], sd_pct=100 * summary["sd"].fillna(0.0),
                          model_label=summary["model"].map(MODEL_LABELS),
                          label=[f"{100 * m:.1f}%" for m in summary["mean"]])
    fig = px.bar(data, x="group", y="mean_pct", color="model_label", barmode="group", error_y="sd_pct", text="label",
                 color_discrete_map={MODEL_LABELS[k]: c for k, c in MODEL_COLORS.items()},
                 hover_data={"seeds": True, "sd_pct": ":.1f", "model_label": False},
                 labels={"mean_pct": "accuracy (%)", "group": "", "model_label": "model", "sd_pct": "sd (points)"},
                 title=title)
    fig.update_traces(textposition="inside", insidetextanchor="start")  # labels at the bars' feet, clear of the error bars
    low = max(0.0, float((data["mean_pct"] - data["sd_pct"]).min()) - 10)
    fig.update_yaxes(range=[low, 101])
    fig.update_layout(margin={"t": 50, "b": 30}, legend={"orientation": "h", "y": -0.15})
    return fig


def loss_figure(history: pd.DataFrame, title: str = "Training loss") -> go.Figure:
    """Training loss (log scale) against step, one colour per model, one line per seed.

    history: columns seed, model, step, loss. Built from plain traces (it is redrawn while training).
    """
    fig = go.Figure()
    for (model, seed), run in history.groupby(["model", "seed"], sort=False):
        fig.add_trace(go.Scatter(x=run["step"], y=run["loss"], mode="lines", name=MODEL_LABELS[model],
                                 legendgroup=model, showlegend=not any(t.legendgroup == model for t in fig.data),
                                 line={"color": MODEL_COLORS[model], "width": 1.5},
                                 hovertemplate=f"{MODEL_LABELS[model]}, seed {seed}<br>step %{{x}}<br>"
                                               f"loss %{{y:.4f}}<extra></extra>"))
    fig.update_yaxes(**LOG_AXIS, title="cross-entropy (nats)")
    fig.update_layout(title=title, xaxis_title="step", margin={"t": 50, "b": 30},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def piecewise_figure(example: Piecewise1D, title: str | None = None) -> go.Figure:
    """The Appendix B.1 picture: each hidden unit's contribution (dashed), the output (thick) and the
    output's breakpoints (dotted verticals)."""
    fig = go.Figure()
    unit_colors = ["#ff7f0e", "#1f77b4"]
    for u in range(example.units.shape[1]):
        kind = "linear" if u in example.linearized else "ReLU"
        fig.add_trace(go.Scatter(x=example.x, y=example.units[:, u], mode="lines", name=f"unit {u + 1} ({kind})",
                                 line={"dash": "dash", "color": unit_colors[u % len(unit_colors)]}))
    fig.add_trace(go.Scatter(x=example.x, y=example.output, mode="lines", name="output",
                             line={"width": 4, "color": "#2ca02c"}))
    for point in example.breakpoints:
        fig.add_vline(x=float(point), line={"dash": "dot", "color": "grey"})
    fig.update_layout(title=title or f"{example.pieces} linear piece{'s' if example.pieces != 1 else ''}",
                      xaxis_title="input x", yaxis_title="value", margin={"t": 50, "b": 30},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def share_sweep_figure(summary: pd.DataFrame, title: str = "Test accuracy as more ReLUs are linearized") -> go.Figure:
    """Mean accuracy (%) of the minority, the majority and overall against the share of hidden units
    linearized (%), with a band of ± one sd over seeds (clipped to 0..100: an accuracy never leaves it).
    summary: :meth:`ToySweep.summary` (share, group, mean, sd as fractions, seeds)."""
    fig = go.Figure()
    colors = {**CLASS_COLORS, "overall": ERROR_COLOR}  # the mid grey that reads on both themes
    for group in ("minority", "majority", "overall"):
        rows = summary[summary["group"] == group].sort_values("share")
        x, mean, sd = 100 * rows["share"], 100 * rows["mean"], 100 * rows["sd"].fillna(0.0)
        high, low = (mean + sd).clip(upper=100.0), (mean - sd).clip(lower=0.0)
        fig.add_trace(go.Scatter(x=list(x) + list(x[::-1]), y=list(high) + list(low[::-1]), fill="toself", mode="lines",
                                 fillcolor=colors[group], opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                 showlegend=False, legendgroup=group))
        fig.add_trace(go.Scatter(x=x, y=mean, mode="lines+markers", name=group, legendgroup=group,
                                 line={"color": colors[group], "width": 2.5, "dash": "dot" if group == "overall" else "solid"},
                                 customdata=rows[["seeds"]].to_numpy(),
                                 hovertemplate=f"{group}<br>%{{x:.0f}}% linearized<br>%{{y:.1f}}% accuracy"
                                               f"<br>%{{customdata[0]}} seed(s)<extra></extra>"))
    fig.update_xaxes(title="hidden units linearized (%)", range=[-2, 100], dtick=10)
    fig.update_yaxes(title="test accuracy (%)")
    fig.update_layout(title=title, height=420, margin={"t": 50, "b": 30}, legend={"orientation": "h", "y": -0.2})
    return fig
