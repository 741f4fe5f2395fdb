"""Plotly figures of the audit and diagnostics pages, drawn from the tidy tables of the views of
:class:`~fairlin_core.audits.results.AuditResults` (graph_objects, not express: a page draws a dozen of these
per rerun).

Conventions every figure follows (the pages and the HTML report draw the same figures):

- colour: one colour per group everywhere (:func:`group_colors`): majority groups in a cool hue family,
  minority groups (:meth:`AuditResults.group_classes`) in a warm one; a :class:`GroupStyle` with a
  ``highlight`` greys every other group;
- budgets: the x axis is "ReLUs kept (% of base)" on a log scale, decreasing to the right (the direction the
  budget slider moves), with ticks at the grid's budgets only and the ReLU count in the hover;
- legends are horizontal, below the plot, and never scroll (``maxheight`` is the whole figure);
- a ``reference`` (the same view of other results, e.g. the shipped default audit beside a run store's) is
  drawn as its own lighter series (dashed lines, grey-edged diamonds on bars) named ``reference_name``, never
  merged with the results' own series;
- no figure fixes a width or a background, so Streamlit's columns, narrow screens and both themes apply;
  error bars are a mid grey that reads on light and dark backgrounds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# cool hues for majority groups, warm hues for minority groups (mid tones: readable on light and dark)
MAJORITY_COLORS = ["#1f6fb4", "#2a9d8f", "#5b7fd6", "#3a8f3a", "#0f8ca8", "#7a6fd0", "#4f9fd6", "#2e7d5b",
                   "#5aa9a0", "#3d5a99"]
MINORITY_COLORS = ["#d62728", "#f28e2b", "#c2185b", "#e8590c", "#b8860b", "#a33d8f", "#ff6f61", "#a0522d",
                   "#e377c2", "#cc3d3d"]
CLASS_COLORS = {"majority": MAJORITY_COLORS[0], "minority": MINORITY_COLORS[0]}
MUTED = "rgba(150,150,150,0.35)"
ERROR_COLOR = "#8c8c8c"  # error bars: mid grey, visible on the light and the dark theme
METHOD_COLORS = {"snl": "#636EFA", "deepreduce": "#EF553B", "random": "#7F7F7F", "base": "#7f7f7f"}
MITIGATION_DASH = {"off": "solid", "on": "dash"}
MARGIN = {"t": 60, "b": 20, "l": 55, "r": 20}
BUDGET_TITLE = "ReLUs kept (% of base)"
LEGEND_BELOW = {"orientation": "h", "yanchor": "top", "y": -0.26, "x": 0, "xanchor": "left", "maxheight": 1,
                "title": {"text": ""}}


def group_colors(names: Sequence[str], minority: Sequence[str] = ()) -> dict[str, str]:
    """The one colour of every group: majority groups take the cool hues and minority groups the warm hues,
    each in the dataset's order of its class (so the same group has the same colour on every page)."""
    minority = {str(m) for m in minority}
    colors, counts = {}, {"majority": 0, "minority": 0}
    for name in (str(n) for n in names):
        kind = "minority" if name in minority else "majority"
        family = MINORITY_COLORS if kind == "minority" else MAJORITY_COLORS
        colors[name] = family[counts[kind] % len(family)]
        counts[kind] += 1
    return colors


@functools.lru_cache(maxsize=32)
def _style_colors(names: tuple[str, ...], minority: tuple[str, ...]) -> dict[str, str]:
    """:func:`group_colors` once per style (a chart asks it per group, on every rerun); read-only."""
    return group_colors(names, minority)


@dataclass(frozen=True)
class GroupStyle:
    """How the groups are drawn: names in the dataset's order, the minority groups, and an optional
    ``highlight`` group (the others are greyed). Hashable, so figures built from it can be cached."""

    names: tuple[str, ...]
    minority: tuple[str, ...] = ()
    highlight: str | None = None

    @classmethod
    def of(cls, names: Sequence[str], minority: Sequence[str] = (), highlight: str | None = None) -> GroupStyle:
        return cls(tuple(str(n) for n in names), tuple(str(m) for m in minority), highlight or None)

    def color(self, group: str) -> str:
        if self.highlight is not None and str(group) != self.highlight:
            return MUTED
        return _style_colors(self.names, self.minority)[str(group)]

    def width(self, group: str, base: float = 2.0) -> float:
        return base + 1.5 if self.highlight is not None and str(group) == self.highlight else base

    def kind(self, group: str) -> str:
        return "minority" if str(group) in self.minority else "majority"


def _legend_name(row: pd.Series, style: GroupStyle) -> str:
    """"5 (minority, train n=21)"; the class is left out where it is the group's own name (toy2d's "minority")."""
    train_n = row.get("train_n")
    tags = [style.kind(row["group"])] if style.kind(row["group"]) != str(row["group"]) else []
    tags += [f"train n={int(train_n)}"] if pd.notna(train_n) else []
    return f"{row['group']} ({', '.join(tags)})" if tags else str(row["group"])


LOG_AXIS = {"type": "log", "dtick": 1, "minor": {"showgrid": False, "ticks": ""}}  # labels at powers of ten only


def _layout(fig: go.Figure, title: str, height: int = 430, subtitle: str = "", **extra) -> go.Figure:
    """The house layout: ``title`` (short enough for an 800 px window) with ``subtitle`` in small type under it
    (more top margin then), the legend below, no fixed width."""
    legend = {**LEGEND_BELOW, **extra.pop("legend", {})}
    margin = {**MARGIN, **({"t": 85} if subtitle else {}), **extra.pop("margin", {})}
    heading = {"text": title, **({"subtitle": {"text": subtitle, "font": {"size": 11}}} if subtitle else {})}
    fig.update_layout(title=heading, height=height + (25 if subtitle else 0), margin=margin, legend=legend, **extra)
    return fig


def _budget_ticks(table: pd.DataFrame) -> tuple[list[float], list[str]]:
    """Tick positions (% of base) and labels at the budgets of ``table`` (budget, budget_fraction)."""
    ticks = table.drop_duplicates("budget_fraction").sort_values("budget_fraction", ascending=False)
    labels = ["100% (base)" if b == "base" else str(b) for b in ticks["budget"]]
    return (100 * ticks["budget_fraction"]).tolist(), labels


def budget_axis(fig: go.Figure, table: pd.DataFrame, **where) -> go.Figure:
    """The one budget x axis: % of base ReLUs kept, log scale, decreasing to the right, ticks at the grid."""
    values, labels = _budget_ticks(table)
    fig.update_xaxes(type="log", autorange="reversed", tickmode="array", tickvals=values, ticktext=labels,
                     title_text=BUDGET_TITLE, minor={"showgrid": False, "ticks": ""}, **where)
    return fig


def _budget_hover(rows: pd.DataFrame) -> np.ndarray:
    """customdata columns budget label, ReLU count (for the hover of a budget axis)."""
    count = rows["relu_count"] if "relu_count" in rows else pd.Series(np.nan, index=rows.index)
    return np.column_stack([rows["budget"].astype(str).to_numpy(), count.to_numpy(dtype=float)])


HOVER_BUDGET = "ReLUs kept %{customdata[0]} (%{customdata[1]:,.0f} ReLUs)"


def _errors(rows: pd.DataFrame, y: str, low: str | None, high: str | None, scale: float) -> dict | None:
    if not (low and high and low in rows and rows[low].notna().any()):
        return None
    return {"type": "data", "symmetric": False, "array": ((rows[high] - rows[y]) * scale).tolist(),
            "arrayminus": ((rows[y] - rows[low]) * scale).tolist(), "thickness": 1.5, "width": 3,
            "color": ERROR_COLOR}


def group_bars(table: pd.DataFrame, style: GroupStyle, *, x: str, y: str, title: str, y_title: str,
               low: str | None = None, high: str | None = None, scale: float = 1.0,
               x_title: str | None = None, unit: str = "", hover_format: str = ".1f",
               reference: pd.DataFrame | None = None, reference_name: str = "reference",
               subtitle: str = "") -> go.Figure:
    """Grouped bars: one bar per group (its colour) at every ``x`` category, optional 95% error bars.

    table: one row per x value and group with columns ``x``, ``y``, group, train_n (for the legend)
    and optionally ``low``/``high``, n, relu_count. The paper's Figures 1, 6 and 9 are this chart. With
    ``x="budget"`` the categories run from the largest budget to the smallest (the budget convention).
    Hovers show values in ``hover_format`` followed by ``unit`` (e.g. "%"). reference: the same columns from
    other results (e.g. the shipped audit), drawn as a light grey-edged diamond on each group's bar (categories
    of ``table`` only), one legend entry ``reference_name``. ``subtitle`` is printed under the title.
    """
    fig = go.Figure()
    categories = list(dict.fromkeys(table[x]))
    for group in style.names:
        rows = table[table["group"] == group]
        if rows.empty:
            continue
        extra = rows[["n"]].to_numpy() if "n" in rows else None
        hover = (f"group {group}<br>%{{x}}: %{{y:{hover_format}}}{unit}"
                 + ("<br>test n=%{customdata[0]}" if extra is not None else ""))
        if x == "budget" and "relu_count" in rows:
            extra = np.column_stack([rows["n"].to_numpy() if "n" in rows else np.full(len(rows), np.nan),
                                     rows["relu_count"].to_numpy(dtype=float)])
            hover = (f"group {group}<br>ReLUs kept %{{x}} (%{{customdata[1]:,.0f}} ReLUs): "
                     f"%{{y:{hover_format}}}{unit}<br>test n=%{{customdata[0]}}")
        # plain lists: plotly converts pandas columns through narwhals, several ms each
        fig.add_trace(go.Bar(x=rows[x].tolist(), y=(rows[y] * scale).tolist(), name=_legend_name(rows.iloc[0], style),
                             marker_color=style.color(group), error_y=_errors(rows, y, low, high, scale),
                             offsetgroup=group, customdata=extra, hovertemplate=hover + "<extra></extra>"))
    if reference is not None:
        _reference_marks(fig, reference[reference[x].isin(categories)], style, x, y, scale,
                         f"%{{y:{hover_format}}}{unit}", reference_name)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=categories,
                     title_text=x_title or (BUDGET_TITLE if x == "budget" else x))
    fig.update_yaxes(title_text=y_title, zeroline=True)
    return _layout(fig, title, barmode="group", scattermode="group", subtitle=subtitle)


def _reference_marks(fig: go.Figure, reference: pd.DataFrame, style: GroupStyle, x: str, y: str, scale: float,
                     value: str, name: str) -> None:
    """The reference's value of every group and category as a diamond centred on that group's bar (the bar's
    ``offsetgroup``), lighter than the bars with a grey edge; one legend entry ``name`` for all of them."""
    shown = False
    for group in style.names:
        rows = reference[reference["group"] == group]
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(
            x=rows[x].tolist(), y=(rows[y] * scale).tolist(), mode="markers", offsetgroup=group, name=name,
            legendgroup="reference", showlegend=not shown,
            marker={"symbol": "diamond-wide", "size": 11, "color": _lighter(style.color(group)),
                    "line": {"color": ERROR_COLOR, "width": 1.5}},
            hovertemplate=f"{name}, group {group}<br>%{{x}}: {value}<extra></extra>"))
        shown = True


def accuracy_lines(table: pd.DataFrame, style: GroupStyle, title: str) -> go.Figure:
    """Per-group accuracy (%) vs ReLUs kept (the budget axis) with a 95% band across seeds (group_drop)."""
    fig = go.Figure()
    for group in style.names:
        rows = table[table["group"] == group].sort_values("budget_fraction")
        if rows.empty:
            continue
        color = style.color(group)
        x = (100 * rows["budget_fraction"]).to_numpy()
        if rows["accuracy_ci_low"].notna().any() and style.highlight in (None, group):
            fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]),
                                     y=100 * np.concatenate([rows["accuracy_ci_high"], rows["accuracy_ci_low"][::-1]]),
                                     mode="lines", fill="toself", fillcolor=_alpha(color, 0.10), line={"width": 0},
                                     hoverinfo="skip", showlegend=False, legendgroup=group))
        fig.add_trace(go.Scatter(x=x, y=(100 * rows["accuracy_mean"]).tolist(), mode="lines+markers",
                                 name=_legend_name(rows.iloc[0], style), legendgroup=group,
                                 line={"color": color, "width": style.width(group)}, customdata=_budget_hover(rows),
                                 hovertemplate=f"group {group}<br>{HOVER_BUDGET}: %{{y:.1f}}%<extra></extra>"))
    fig.update_yaxes(title_text="accuracy (%)")
    return _layout(budget_axis(fig, table), title)


def class_lines(table: pd.DataFrame, title: str, rule: str, reference: pd.DataFrame | None = None,
                reference_name: str = "reference") -> go.Figure:
    """Majority vs minority: the relative drop (%) of each class's accuracy vs ReLUs kept, one panel per
    method, with 95% bands across seeds (:meth:`AuditResults.class_drop`); ``rule`` (how groups are
    classed) is printed under the title. reference: :meth:`AuditResults.class_drop` of other results (e.g.
    the shipped audit), drawn dashed and lighter, without bands, in the panels of ``table``'s methods, as
    legend entries "<class> groups · ``reference_name``"."""
    methods = list(dict.fromkeys(table["method"]))
    fig = make_subplots(rows=1, cols=max(1, len(methods)), shared_yaxes=True, subplot_titles=methods,
                        horizontal_spacing=0.04)
    for col, method in enumerate(methods, start=1):
        for kind in ("majority", "minority"):
            rows = table[(table["method"] == method) & (table["group_class"] == kind)].sort_values("budget_fraction")
            if rows.empty:
                continue
            color = CLASS_COLORS[kind]
            x = (100 * rows["budget_fraction"]).to_numpy()
            if rows["drop_ci_low"].notna().any():
                fig.add_trace(go.Scatter(x=np.concatenate([x, x[::-1]]),
                                         y=np.concatenate([rows["drop_ci_high"], rows["drop_ci_low"][::-1]]),
                                         mode="lines", fill="toself", fillcolor=_alpha(color, 0.15), line={"width": 0},
                                         hoverinfo="skip", showlegend=False, legendgroup=kind), row=1, col=col)
            fig.add_trace(go.Scatter(x=x, y=rows["drop_mean"].tolist(), mode="lines+markers", name=f"{kind} groups",
                                     legendgroup=kind, showlegend=col == 1, line={"color": color, "width": 2.5},
                                     customdata=_budget_hover(rows),
                                     hovertemplate=f"{method}, {kind}<br>{HOVER_BUDGET}: %{{y:.1f}}% drop"
                                                   f"<extra></extra>"), row=1, col=col)
            if reference is not None:
                _reference_line(fig, reference[(reference["method"] == method) & (reference["group_class"] == kind)],
                                kind, method, reference_name, col)
        ticks = table[table["method"] == method]
        if reference is not None:  # the reference's budgets are ticked too
            ticks = pd.concat([ticks, reference[reference["method"] == method]], ignore_index=True)
        budget_axis(fig, ticks, row=1, col=col)
        fig.update_xaxes(title_text=BUDGET_TITLE if col == 1 else "", row=1, col=col)
    fig.update_yaxes(title_text="relative accuracy drop (%)", zeroline=True, row=1, col=1)
    fig = _layout(fig, title, height=490, margin={"t": 130})
    fig.update_layout(title={"subtitle": {"text": rule, "font": {"size": 11}}, "y": 0.97, "yanchor": "top"})
    return fig


def _reference_line(fig: go.Figure, rows: pd.DataFrame, kind: str, method: str, name: str, col: int) -> None:
    """One class's relative drop in the reference results: dashed, lighter, open markers (panel ``col``)."""
    if rows.empty:
        return
    rows = rows.sort_values("budget_fraction")
    color = _alpha(CLASS_COLORS[kind], 0.6)
    fig.add_trace(go.Scatter(x=(100 * rows["budget_fraction"]).tolist(), y=rows["drop_mean"].tolist(),
                             mode="lines+markers", name=f"{kind} groups · {name}", legendgroup=f"{kind}-reference",
                             showlegend=col == 1, line={"color": color, "width": 1.5, "dash": "dash"},
                             marker={"symbol": "circle-open", "size": 7, "color": color},
                             customdata=_budget_hover(rows),
                             hovertemplate=f"{name}: {method}, {kind}<br>{HOVER_BUDGET}: %{{y:.1f}}% drop"
                                           f"<extra></extra>"), row=1, col=col)


def budget_snapshot(table: pd.DataFrame, style: GroupStyle, title: str) -> go.Figure:
    """At one budget: each group's accuracy after linearization (bar, its colour, 95% interval) and the
    base model's (diamond)."""
    rows = table.set_index("group").reindex([g for g in style.names if g in set(table["group"])]).reset_index()
    labels = [f"{r['group']}<br>n={int(r['train_n'])}" if pd.notna(r.get("train_n")) else str(r["group"])
              for _, r in rows.iterrows()]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=(100 * rows["accuracy_mean"]).tolist(),
                         marker_color=[style.color(g) for g in rows["group"]],
                         error_y=_errors(rows, "accuracy_mean", "accuracy_ci_low", "accuracy_ci_high", 100),
                         name="linearized (bar colour = group)", hovertemplate="%{x}: %{y:.1f}%<extra></extra>"))
    fig.add_trace(go.Scatter(x=labels, y=(100 * rows["base_accuracy"]).tolist(), mode="markers", name="base model",
                             marker={"symbol": "diamond", "size": 10, "color": ERROR_COLOR,
                                     "line": {"color": "white", "width": 1}},
                             hovertemplate="%{x}: base %{y:.1f}%<extra></extra>"))
    fig.update_xaxes(type="category", title_text="group (training-set size)")
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 105])
    return _layout(fig, title)


def base_accuracy_bars(table: pd.DataFrame, style: GroupStyle, title: str, subtitle: str = "") -> go.Figure:
    """The base model's accuracy (%) per group with a bootstrap 95% interval and the group's n in the label
    (:meth:`AuditResults.base_accuracy`); ``subtitle`` is printed under the title."""
    rows = table.set_index("group").reindex([g for g in style.names if g in set(table["group"])]).reset_index()
    labels = [f"{g}<br>n={int(n)}" for g, n in zip(rows["group"], rows["n"])]
    fig = go.Figure(go.Bar(x=labels, y=(100 * rows["accuracy"]).tolist(),
                           marker_color=[style.color(g) for g in rows["group"]], name="base model",
                           error_y=_errors(rows, "accuracy", "ci_low", "ci_high", 100),
                           hovertemplate="group %{x}: %{y:.1f}%<extra></extra>"))
    fig.update_xaxes(type="category", title_text="group (test examples n)")
    fig.update_yaxes(title_text="accuracy (%)", range=[0, 105])
    return _layout(fig, title, height=380, showlegend=False, subtitle=subtitle)


def summary_lines(summary: pd.DataFrame, value: str, title: str, y_title: str) -> go.Figure:
    """``value`` (a fraction: worst_group_accuracy, overall_accuracy or parity_gap; drawn in %) vs ReLUs kept,
    one colour per method, dashed when mitigated."""
    fig = go.Figure()
    for (method, mitigation), rows in summary.groupby(["method", "mitigation"], sort=False):
        rows = rows.sort_values("budget_fraction")
        fig.add_trace(go.Scatter(x=100 * rows["budget_fraction"], y=100 * rows[value], mode="lines+markers",
                                 name=f"{method}, mitigation {mitigation}",
                                 line={"color": METHOD_COLORS.get(method), "dash": MITIGATION_DASH.get(mitigation)},
                                 customdata=_budget_hover(rows),
                                 hovertemplate=f"{method}<br>{HOVER_BUDGET}: %{{y:.1f}}<extra></extra>"))
    fig.update_yaxes(title_text=y_title)
    return _layout(budget_axis(fig, summary), title, height=400)


FRONT_PANELS = (("worst_group_accuracy", "front_worst", "worst group"),
                ("minority_accuracy", "front_minority", "minority groups"))
MITIGATION_SYMBOL = {"off": "circle", "on": "diamond"}


def cost_front(table: pd.DataFrame, title: str, subtitle: str = "") -> go.Figure:
    """Worst-group accuracy (left) and minority accuracy (right), in %, against estimated online latency
    (s, log): one marker per method x budget x mitigation of :meth:`AuditResults.cost_front` (colour = method,
    diamond = mitigated, star = base model) and its Pareto front as a step line; ``subtitle`` under the title."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[label for _, _, label in FRONT_PANELS],
                        horizontal_spacing=0.08)
    for col, (value, front, _) in enumerate(FRONT_PANELS, start=1):
        for (method, mitigation), rows in table.groupby(["method", "mitigation"], sort=False):
            base = method == "base"
            marker = ({"color": ERROR_COLOR, "symbol": "star", "size": 13} if base else
                      {"color": METHOD_COLORS.get(method), "symbol": MITIGATION_SYMBOL.get(mitigation), "size": 9})
            fig.add_trace(go.Scatter(
                x=rows["online_latency_s"], y=100 * rows[value], mode="markers", marker=marker,
                name="base model" if base else f"{method}, mitigation {mitigation}", legendgroup=f"{method}{mitigation}",
                showlegend=col == 1, customdata=rows[["budget", "relu_count", "online_mb"]],
                hovertemplate=f"{method}, ReLUs kept %{{customdata[0]}} (%{{customdata[1]:,.0f}} ReLUs, mitigation "
                              f"{mitigation})<br>online %{{x:.3g}} s, %{{customdata[2]:.3g}} MB<br>accuracy %{{y:.1f}}%"
                              f"<extra></extra>"), row=1, col=col)
        points = table[table[front]].sort_values("online_latency_s")
        fig.add_trace(go.Scatter(x=points["online_latency_s"], y=100 * points[value], mode="lines",
                                 line={"color": ERROR_COLOR, "shape": "hv", "width": 1.5}, name="Pareto front",
                                 legendgroup="front", showlegend=col == 1, hoverinfo="skip"), row=1, col=col)
    fig.update_xaxes(**LOG_AXIS, title_text="estimated online latency (s, log)")
    fig.update_yaxes(title_text="accuracy (%)", col=1)
    return _layout(fig, title, height=460, subtitle=subtitle, margin={"t": 115 if subtitle else 90})


def diagnostic_lines(table: pd.DataFrame, style: GroupStyle, value: str, title: str, y_title: str,
                     log_y: bool = False) -> go.Figure:
    """A per-group diagnostic vs ReLUs kept (the budget axis; the base model at 100%)."""
    fig = go.Figure()
    for group in style.names:
        rows = table[table["group"] == group].sort_values("budget_fraction")
        if rows.empty or rows[value].isna().all():
            continue
        fig.add_trace(go.Scatter(x=100 * rows["budget_fraction"], y=rows[value], mode="lines+markers",
                                 name=_legend_name(rows.iloc[0], style),
                                 line={"color": style.color(group), "width": style.width(group)},
                                 customdata=_budget_hover(rows),
                                 hovertemplate=f"group {group}<br>{HOVER_BUDGET}: %{{y:.4g}}<extra></extra>"))
    fig.update_yaxes(title_text=y_title, **(LOG_AXIS if log_y else {"type": "linear"}))
    return _layout(budget_axis(fig, table), title)


def diagnostic_scatter(table: pd.DataFrame, style: GroupStyle, x: str, x_title: str, title: str) -> go.Figure:
    """Accuracy (%) against a diagnostic: one point per group and budget, the group's colour."""
    fig = go.Figure()
    for group in style.names:
        rows = table[(table["group"] == group) & table[x].notna()]
        if rows.empty:
            continue
        fig.add_trace(go.Scatter(x=rows[x], y=100 * rows["accuracy"], mode="markers",
                                 name=_legend_name(rows.iloc[0], style),
                                 marker={"color": style.color(group), "size": 9}, customdata=_budget_hover(rows),
                                 hovertemplate=f"group {group}, {HOVER_BUDGET}<br>{x_title}: %{{x:.4g}}<br>"
                                               f"accuracy: %{{y:.1f}}%<extra></extra>"))
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text="accuracy (%)")
    return _layout(fig, title)


def density_lines(density: pd.DataFrame, style: GroupStyle, title: str, subtitle: str = "") -> go.Figure:
    """Hessian eigenvalue density per group (log density axis on every panel), base model and linearized
    side by side; ``subtitle`` (e.g. the run) under the title."""
    models = [m for m in ("base", "lin") if m in set(density["model"])]
    fig = make_subplots(rows=1, cols=max(1, len(models)), shared_yaxes=True,
                        subplot_titles=[{"base": "base model", "lin": "linearized"}[m] for m in models])
    for col, model in enumerate(models, start=1):
        for group in style.names:
            rows = density[(density["model"] == model) & (density["group"] == group)]
            if rows.empty:
                continue
            fig.add_trace(go.Scatter(x=rows["eigenvalue"], y=rows["density"].clip(lower=1e-12), mode="lines",
                                     name=str(group), legendgroup=str(group), showlegend=col == 1,
                                     line={"color": style.color(group), "width": style.width(group, 1.5)}),
                          row=1, col=col)
        fig.update_xaxes(title_text="eigenvalue", row=1, col=col)
    fig.update_yaxes(**LOG_AXIS)
    fig.update_yaxes(title_text="density (log)", row=1, col=1)
    return _layout(fig, title, subtitle=subtitle, margin={"t": 115 if subtitle else 90})


def distance_lines(distances: pd.DataFrame, title: str) -> go.Figure:
    """||theta_lin - theta_base|| vs ReLUs kept, one colour per method, dashed when mitigated."""
    fig = go.Figure()
    for (method, mitigation), rows in distances.groupby(["method", "mitigation"], sort=False):
        rows = rows.sort_values("budget_fraction")
        fig.add_trace(go.Scatter(x=100 * rows["budget_fraction"], y=rows["param_distance"], mode="lines+markers",
                                 name=f"{method}, mitigation {mitigation}", customdata=_budget_hover(rows),
                                 line={"color": METHOD_COLORS.get(method), "dash": MITIGATION_DASH.get(mitigation)},
                                 hovertemplate=f"{method}<br>{HOVER_BUDGET}: %{{y:.4g}}<extra></extra>"))
    fig.update_yaxes(title_text="||θ_lin − θ_base||")
    return _layout(budget_axis(fig, distances), title, height=400)


def bound_scatter(table: pd.DataFrame, style: GroupStyle, title: str, note: str = "") -> go.Figure:
    """Theorem 4.4 per group at one budget: the bound ||g_a|| d + ½ λ_max(H_a) d² (y, log) against the measured
    excess loss (x), one labelled point per group in its colour; ``note`` (e.g. the rank correlation) is
    printed under the title."""
    rows = table.dropna(subset=["bound", "excess_loss"])
    fig = go.Figure()
    for group in style.names:
        point = rows[rows["group"] == group]
        if point.empty:
            continue
        fig.add_trace(go.Scatter(x=point["excess_loss"], y=point["bound"], mode="markers+text", text=[group],
                                 textposition="top center", name=_legend_name(point.iloc[0], style),
                                 marker={"color": style.color(group), "size": 11},
                                 hovertemplate=f"group {group}<br>measured excess loss %{{x:.4g}}<br>bound %{{y:.4g}}"
                                               f"<extra></extra>"))
    fig.update_xaxes(title_text="measured excess loss R(a) (nats)", zeroline=True)
    fig.update_yaxes(title_text="bound (nats, log)", **LOG_AXIS)
    return _layout(fig, title, subtitle=note)


def attribution_maps(attributions: pd.DataFrame, group: str, input_shape: Sequence[int], title: str,
                     mean_input: pd.DataFrame | None = None, subtitle: str = "") -> go.Figure:
    """Mean |attribution| of one group's examples as heatmaps: rows = base / linearized model, columns =
    the group's mean input image (``mean_input``: group, element, value; first column, greys) then one per
    attribution method; channels are averaged, each attribution map scaled to its own maximum. Panel titles
    take two short lines (they fit an 800 px window); ``subtitle`` (e.g. the run) goes under the title."""
    rows = attributions[attributions["group"] == group]
    models = [m for m in ("base", "lin") if m in set(rows["model"])]
    methods = list(dict.fromkeys(rows["method"]))
    shape = tuple(int(s) for s in input_shape)
    image_input = None
    if mean_input is not None:
        values = mean_input[mean_input["group"] == group].sort_values("element")["value"].to_numpy()
        image_input = _image(values, shape)
    first = 1 if image_input is not None else 0
    cols = first + max(1, len(methods))
    model_names = {"base": "base", "lin": "linearized"}
    titles = [t for m in models for t in ([f"mean input<br>of group {group}"] if first else []) +
              [f"{model_names[m]}<br>{method.replace('_', ' ')}" for method in methods]]
    fig = make_subplots(rows=max(1, len(models)), cols=cols, subplot_titles=titles, horizontal_spacing=0.04,
                        vertical_spacing=0.12)
    for r, model in enumerate(models, start=1):
        panels = ([("input", image_input)] if first else []) + [
            (method, _image(rows[(rows["model"] == model) & (rows["method"] == method)]
                            .sort_values("element")["value"].to_numpy(), shape)) for method in methods]
        for c, (name, image) in enumerate(panels, start=1):
            if image is None:
                continue
            if name == "input":
                trace = go.Heatmap(z=image, colorscale="Greys", reversescale=True, showscale=False,
                                   hovertemplate="row %{y}, col %{x}: %{z:.2f} (normalised)<extra></extra>")
            else:
                peak = image.max() or 1.0
                trace = go.Heatmap(z=image / peak, colorscale="Viridis", zmin=0, zmax=1,
                                   showscale=(r, c) == (1, cols),
                                   hovertemplate="row %{y}, col %{x}: %{z:.2f} of the map's maximum<extra></extra>")
            fig.add_trace(trace, row=r, col=c)
            axis = (r - 1) * cols + c
            bare = {"showticklabels": False, "ticks": "", "showgrid": False, "zeroline": False, "showline": False}
            fig.update_yaxes(autorange="reversed", scaleanchor=f"x{'' if axis == 1 else axis}", row=r, col=c, **bare)
            fig.update_xaxes(row=r, col=c, **bare)
    fig.update_annotations(font_size=12)
    return _layout(fig, title, height=250 * max(1, len(models)) + 60, showlegend=False, subtitle=subtitle,
                   margin={"t": 145 if subtitle else 105})


def _image(values: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """A flat input-shaped vector as a 2-D image (channels averaged); None when the sizes disagree."""
    if values.size != int(np.prod(shape)):
        return None
    image = values.reshape(shape)
    return image.mean(axis=0) if image.ndim == 3 else image.reshape(1, -1) if image.ndim == 1 else image


def _lighter(color: str) -> str:
    """``color`` (a hex colour of the palettes, or an rgba such as :data:`MUTED`) at 45% opacity."""
    return _alpha(color, 0.45) if color.startswith("#") else color


def _alpha(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    red, green, blue = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({red},{green},{blue},{alpha})"
