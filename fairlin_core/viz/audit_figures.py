"""Plotly figures of the audit and diagnostics pages, drawn from the tidy tables of the views of
:class:`~fairlin_core.audit.results.AuditResults` (graph_objects, not express: a page draws a dozen of these
per rerun).

Every group keeps one colour in every chart (:func:`group_colors`), group names label every axis
and legend, and no figure fixes a background, so Streamlit's light and dark themes both apply.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

PALETTE = qualitative.Plotly + qualitative.Dark24
METHOD_COLORS = {"snl": "#636EFA", "deepreduce": "#EF553B", "random": "#7F7F7F"}
MITIGATION_DASH = {"off": "solid", "on": "dash"}
MARGIN = {"t": 50, "b": 40, "l": 50, "r": 20}


def group_colors(names: Sequence[str]) -> dict[str, str]:
    """One colour per group name, by the group's position in the dataset's order."""
    return {str(name): PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _legend_name(row: pd.Series) -> str:
    train_n = row.get("train_n")
    return f"{row['group']} (train n={int(train_n)})" if pd.notna(train_n) else str(row["group"])


def _layout(fig: go.Figure, title: str, height: int = 380, **extra) -> go.Figure:
    extra.setdefault("legend", {"title": {"text": "group"}})
    fig.update_layout(title=title, height=height, margin=MARGIN, **extra)
    return fig


def group_bars(table: pd.DataFrame, names: Sequence[str], *, x: str, y: str, title: str, y_title: str,
               low: str | None = None, high: str | None = None, scale: float = 1.0) -> go.Figure:
    """Grouped bars: one bar per group (its colour) at every ``x`` category, optional 95% error bars.

    table: one row per x value and group with columns ``x``, ``y``, group, train_n (for the legend)
    and optionally ``low``/``high``. The paper's Figures 1, 6 and 9 are this chart.
    """
    colors = group_colors(names)
    fig = go.Figure()
    categories = list(dict.fromkeys(table[x]))
    for group in names:
        rows = table[table["group"] == group]
        if rows.empty:
            continue
        error = None
        if low and high and rows[low].notna().any():
            error = {"type": "data", "symmetric": False, "array": ((rows[high] - rows[y]) * scale).tolist(),
                     "arrayminus": ((rows[y] - rows[low]) * scale).tolist(), "thickness": 1}
        # plain lists: plotly converts pandas columns through narwhals, several ms each
        fig.add_trace(go.Bar(x=rows[x].tolist(), y=(rows[y] * scale).tolist(), name=_legend_name(rows.iloc[0]),
                             marker_color=colors[group], error_y=error,
                             customdata=rows[["n"]].to_numpy() if "n" in rows else None,
                             hovertemplate=f"group {group}<br>%{{x}}: %{{y:.2f}}" +
                                           ("<br>test n=%{customdata[0]}" if "n" in rows else "") + "<extra></extra>"))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=categories)
    fig.update_yaxes(title_text=y_title, zeroline=True)
    return _layout(fig, title, barmode="group")


def accuracy_lines(table: pd.DataFrame, names: Sequence[str], title: str) -> go.Figure:
    """Per-group accuracy (%) vs ReLU count (log axis) with a 95% band across seeds (group_drop table)."""
    colors = group_colors(names)
    fig = go.Figure()
    for group in names:
        rows = table[table["group"] == group].sort_values("relu_count")
        if rows.empty:
            continue
        color = colors[group]
        if rows["accuracy_ci_low"].notna().any():
            band_x = np.concatenate([rows["relu_count"], rows["relu_count"][::-1]])
            band_y = 100 * np.concatenate([rows["accuracy_ci_high"], rows["accuracy_ci_low"][::-1]])
            fig.add_trace(go.Scatter(x=band_x, y=band_y, mode="lines", fill="toself", fillcolor=_alpha(color, 0.08),
                                     line={"width": 0}, hoverinfo="skip", showlegend=False, legendgroup=group))
        fig.add_trace(go.Scatter(x=rows["relu_count"], y=100 * rows["accuracy_mean"], mode="lines+markers",
                                 name=_legend_name(rows.iloc[0]), legendgroup=group, line={"color": color},
                                 customdata=rows[["budget"]],
                                 hovertemplate=f"group {group}<br>%{{customdata[0]}} (%{{x:.0f}} ReLUs): "
                                               f"%{{y:.1f}}%<extra></extra>"))
    fig.update_xaxes(type="log", title_text="ReLU count (log)")
    fig.update_yaxes(title_text="accuracy (%)")
    return _layout(fig, title)


def budget_snapshot(table: pd.DataFrame, names: Sequence[str], title: str) -> go.Figure:
    """At one budget: each group's accuracy after linearization (bar, its colour, 95% interval) and the
    base model's (black diamond)."""
    colors = group_colors(names)
    rows = table.set_index("group").reindex([g for g in names if g in set(table["group"])]).reset_index()
    labels = [f"{r['group']}<br>n={int(r['train_n'])}" if pd.notna(r.get("train_n")) else str(r["group"])
              for _, r in rows.iterrows()]
    fig = go.Figure()
    error = None
    if rows["accuracy_ci_low"].notna().any():
        error = {"type": "data", "symmetric": False,
                 "array": (100 * (rows["accuracy_ci_high"] - rows["accuracy_mean"])).tolist(),
                 "arrayminus": (100 * (rows["accuracy_mean"] - rows["accuracy_ci_low"])).tolist(), "thickness": 1}
    fig.add_trace(go.Bar(x=labels, y=(100 * rows["accuracy_mean"]).tolist(),
                         marker_color=[colors[g] for g in rows["group"]], error_y=error, name="linearized",
                         hovertemplate="%{x}: %{y:.1f}%<extra></extra>"))
    fig.add_trace(go.Scatter(x=labels, y=(100 * rows["base_accuracy"]).tolist(), mode="markers", name="base model",
                             marker={"symbol": "diamond", "size": 10, "color": "#444",
                                     "line": {"color": "white", "width": 1}}))
    fig.update_xaxes(type="category", title_text="group (training-set size)")
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 105])
    return _layout(fig, title, legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02,
                                       "yanchor": "bottom"})


def summary_lines(summary: pd.DataFrame, value: str, title: str, y_title: str) -> go.Figure:
    """``value`` (a fraction: worst_group_accuracy, overall_accuracy or parity_gap; drawn in %) vs ReLU count,
    one colour per method, dashed when mitigated."""
    fig = go.Figure()
    for (method, mitigation), rows in summary.groupby(["method", "mitigation"], sort=False):
        rows = rows.sort_values("relu_count")
        fig.add_trace(go.Scatter(x=rows["relu_count"], y=100 * rows[value], mode="lines+markers",
                                 name=f"{method}, mitigation {mitigation}",
                                 line={"color": METHOD_COLORS.get(method), "dash": MITIGATION_DASH.get(mitigation)},
                                 customdata=rows[["budget"]],
                                 hovertemplate="%{customdata[0]} (%{x:.0f} ReLUs): %{y:.2f}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="ReLU count (log)")
    fig.update_yaxes(title_text=y_title)
    return _layout(fig, title, height=340, legend={"title": {"text": "method"}})


FRONT_PANELS = (("worst_group_accuracy", "front_worst", "worst group"),
                ("minority_accuracy", "front_minority", "minority groups (below an equal training share)"))
MITIGATION_SYMBOL = {"off": "circle", "on": "diamond"}


def cost_front(table: pd.DataFrame, title: str) -> go.Figure:
    """Worst-group accuracy (left) and minority accuracy (right), in %, against estimated online latency
    (s, log): one marker per method x budget x mitigation of :meth:`AuditResults.cost_front` (colour = method,
    diamond = mitigated, black star = base model) and its Pareto front as a black step line."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[label for _, _, label in FRONT_PANELS],
                        horizontal_spacing=0.08)
    for col, (value, front, _) in enumerate(FRONT_PANELS, start=1):
        for (method, mitigation), rows in table.groupby(["method", "mitigation"], sort=False):
            base = method == "base"
            marker = ({"color": "black", "symbol": "star", "size": 13} if base else
                      {"color": METHOD_COLORS.get(method), "symbol": MITIGATION_SYMBOL.get(mitigation), "size": 9})
            fig.add_trace(go.Scatter(
                x=rows["online_latency_s"], y=100 * rows[value], mode="markers", marker=marker,
                name="base model" if base else f"{method}, mitigation {mitigation}", legendgroup=f"{method}{mitigation}",
                showlegend=col == 1, customdata=rows[["budget", "relu_count", "online_mb"]],
                hovertemplate=f"{method} %{{customdata[0]}} (%{{customdata[1]:.0f}} ReLUs, mitigation {mitigation})"
                              f"<br>online %{{x:.3g}} s, %{{customdata[2]:.3g}} MB<br>accuracy %{{y:.1f}}%"
                              f"<extra></extra>"), row=1, col=col)
        points = table[table[front]].sort_values("online_latency_s")
        fig.add_trace(go.Scatter(x=points["online_latency_s"], y=100 * points[value], mode="lines",
                                 line={"color": "black", "shape": "hv", "width": 1.5}, name="Pareto front",
                                 legendgroup="front", showlegend=col == 1, hoverinfo="skip"), row=1, col=col)
    fig.update_xaxes(type="log", title_text="estimated online latency (s, log)")
    fig.update_yaxes(title_text="accuracy (%)", col=1)
    return _layout(fig, title, height=420, legend={"title": {"text": "method"}})


def diagnostic_lines(table: pd.DataFrame, names: Sequence[str], value: str, title: str, y_title: str,
                     log_y: bool = False) -> go.Figure:
    """A per-group diagnostic vs budget (fraction of ReLUs kept, log axis; the base model at 100%)."""
    colors = group_colors(names)
    fig = go.Figure()
    for group in names:
        rows = table[table["group"] == group].sort_values("budget_fraction")
        if rows.empty or rows[value].isna().all():
            continue
        fig.add_trace(go.Scatter(x=100 * rows["budget_fraction"], y=rows[value], mode="lines+markers", name=str(group),
                                 line={"color": colors[group]}, customdata=rows[["budget"]],
                                 hovertemplate=f"group {group}<br>%{{customdata[0]}}: %{{y:.4g}}<extra></extra>"))
    fig.update_xaxes(type="log", title_text="ReLUs kept (% of base, log; 100 = base model)")
    fig.update_yaxes(title_text=y_title, type="log" if log_y else "linear")
    return _layout(fig, title, height=340)


def diagnostic_scatter(table: pd.DataFrame, names: Sequence[str], x: str, x_title: str, title: str) -> go.Figure:
    """Accuracy (%) against a diagnostic: one point per group and budget, the group's colour."""
    colors = group_colors(names)
    fig = go.Figure()
    for group in names:
        rows = table[(table["group"] == group) & table[x].notna()]
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(x=rows[x], y=100 * rows["accuracy"], mode="markers", name=str(group),
                                 marker={"color": colors[group], "size": 9}, customdata=rows[["budget"]],
                                 hovertemplate=f"group {group}, %{{customdata[0]}}<br>{x_title}: %{{x:.4g}}<br>"
                                               f"accuracy: %{{y:.1f}}%<extra></extra>"))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="accuracy (%)")
    return _layout(fig, title, height=340)


def density_lines(density: pd.DataFrame, names: Sequence[str], title: str) -> go.Figure:
    """Hessian eigenvalue density per group (log density axis), base model and linearized side by side."""
    colors = group_colors(names)
    models = [m for m in ("base", "lin") if m in set(density["model"])]
    fig = make_subplots(rows=1, cols=len(models), shared_yaxes=True,
                        subplot_titles=[{"base": "base model", "lin": "linearized"}[m] for m in models])
    for col, model in enumerate(models, start=1):
        for group in names:
            rows = density[(density["model"] == model) & (density["group"] == group)]
            if rows.empty:
                continue
            fig.add_trace(go.Scatter(x=rows["eigenvalue"], y=rows["density"].clip(lower=1e-12), mode="lines",
                                     name=str(group), legendgroup=str(group), showlegend=col == 1,
                                     line={"color": colors[group], "width": 1.5}), row=1, col=col)
        fig.update_xaxes(title_text="eigenvalue", row=1, col=col)
    fig.update_yaxes(type="log", title_text="density", row=1, col=1)
    return _layout(fig, title, height=360)


def distance_lines(distances: pd.DataFrame, title: str) -> go.Figure:
    """||theta_lin - theta_base|| vs ReLU count, one colour per method, dashed when mitigated."""
    fig = go.Figure()
    for (method, mitigation), rows in distances.groupby(["method", "mitigation"], sort=False):
        rows = rows.sort_values("relu_count")
        fig.add_trace(go.Scatter(x=rows["relu_count"], y=rows["param_distance"], mode="lines+markers",
                                 name=f"{method}, mitigation {mitigation}",
                                 line={"color": METHOD_COLORS.get(method), "dash": MITIGATION_DASH.get(mitigation)}))
    fig.update_xaxes(type="log", title_text="ReLU count (log)")
    fig.update_yaxes(title_text="||θ_lin − θ_base||")
    return _layout(fig, title, height=320, legend={"title": {"text": "method"}})


def bound_bars(table: pd.DataFrame, names: Sequence[str], title: str) -> go.Figure:
    """Theorem 4.4 per group at one budget: the bound (left) next to the measured excess loss (right)."""
    colors = group_colors(names)
    rows = table.set_index("group").reindex([g for g in names if g in set(table["group"])]).reset_index()
    fig = make_subplots(rows=1, cols=2, subplot_titles=["bound ||g_a|| d + ½ λ_max(H_a) d²", "measured excess loss"])
    marker = [colors[g] for g in rows["group"]]
    fig.add_trace(go.Bar(x=rows["group"], y=rows["bound"], marker_color=marker, showlegend=False,
                         hovertemplate="group %{x}: bound %{y:.4g}<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Bar(x=rows["group"], y=rows["excess_loss"], marker_color=marker, showlegend=False,
                         hovertemplate="group %{x}: excess loss %{y:.4g}<extra></extra>"), row=1, col=2)
    fig.update_xaxes(type="category", title_text="group")
    fig.update_yaxes(type="log", row=1, col=1)
    return _layout(fig, title, height=340)


def attribution_maps(attributions: pd.DataFrame, group: str, input_shape: Sequence[int], title: str) -> go.Figure:
    """Mean |attribution| of one group's examples as heatmaps: rows = base / linearized model, columns =
    attribution method; channels are averaged, each map scaled to its own maximum."""
    rows = attributions[attributions["group"] == group]
    models = [m for m in ("base", "lin") if m in set(rows["model"])]
    methods = list(dict.fromkeys(rows["method"]))
    shape = tuple(int(s) for s in input_shape)
    model_names = {"base": "base", "lin": "linearized"}
    titles = [f"{model_names[m]} · {method.replace('_', ' ')}" for m in models for method in methods]
    fig = make_subplots(rows=len(models), cols=max(1, len(methods)), subplot_titles=titles,
                        horizontal_spacing=0.05, vertical_spacing=0.12)
    for r, model in enumerate(models, start=1):
        for c, method in enumerate(methods, start=1):
            part = rows[(rows["model"] == model) & (rows["method"] == method)].sort_values("element")
            values = part["value"].to_numpy()
            if values.size != int(np.prod(shape)):
                continue
            image = values.reshape(shape)
            image = image.mean(axis=0) if image.ndim == 3 else image.reshape(1, -1) if image.ndim == 1 else image
            peak = image.max() or 1.0
            fig.add_trace(go.Heatmap(z=image / peak, colorscale="Viridis", zmin=0, zmax=1, showscale=(r, c) == (1, 1),
                                     hovertemplate="row %{y}, col %{x}: %{z:.2f}<extra></extra>"), row=r, col=c)
            axis = (r - 1) * len(methods) + c
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if axis == 1 else axis}", row=r, col=c,
                             showticklabels=False)
            fig.update_xaxes(showticklabels=False, row=r, col=c)
    return _layout(fig, title, height=260 * max(1, len(models)))


def _alpha(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    red, green, blue = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"
