"""Where the audit and diagnostics pages read their results: the shipped default audit (for the shipped
digits checkpoint) and the finished runs of the run store, loaded once and cached.

:func:`choose_results` draws the source picker and returns ``(key, results)``. Pages call the results'
typed views directly (``results.group_drop(split, method, mitigation)``): the results objects are cached
across reruns and memoise their views, so a rerun (a budget scrub) recomputes no view; :func:`chart`
builds a figure once per results key, figure, :class:`Rows` and arguments.
"""

import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from fairlin_core.audits import SHIPPED_AUDIT, AuditResults, load_results
from ui.errors import show_error
from fairlin_core.jobs import collect_from_store, get_manager
from fairlin_core.linearizers import NO_MITIGATION
from fairlin_core.viz import GroupStyle
from ui.state import current

SHIPPED_LABEL = "Shipped default audit"


def mitigation_labels(results: AuditResults) -> dict[str, str]:
    """The Mitigation radio's labels by mitigation name: "plain finetune" for ``none``, "mitigated: lagrangian
    mu 0.01" (the mitigation as its runs were set) for the others (:meth:`AuditResults.mitigations`)."""
    return {name: text if name == NO_MITIGATION else f"mitigated: {text}" for name, text in results.mitigations().items()}


def mitigated(results: AuditResults) -> str | None:
    """The mitigation name of the mitigated runs on screen (results of one series hold at most one), or None."""
    return next((name for name in results.mitigations() if name != NO_MITIGATION), None)


REGISTRY_SIZE = 8


@st.cache_resource(show_spinner=False)
def _registry() -> dict[str, AuditResults]:
    """Results by source key, most recent last (a run store gets a new key whenever a run finishes)."""
    return {}


def _register(key: str, results: AuditResults) -> None:
    registry = _registry()
    registry.pop(key, None)
    registry[key] = results
    while len(registry) > REGISTRY_SIZE:
        registry.pop(next(iter(registry)))


def _shipped_for(checkpoint: str | None) -> bool:
    if not checkpoint or not (SHIPPED_AUDIT / "meta.json").is_file():
        return False
    shipped = Path(__file__).resolve().parent.parent / "checkpoints"
    path = Path(checkpoint).resolve()
    return path.parent == shipped and load_shipped().meta.get("checkpoint") == path.name


@st.cache_resource(show_spinner=False)
def load_shipped() -> AuditResults:
    return load_results(SHIPPED_AUDIT)


@st.cache_resource(show_spinner="Reading the run store…", max_entries=8)
def _load_store(signature: tuple, checkpoint: str, group: str, data_root: str | None) -> AuditResults:
    """The store's finished runs of ``checkpoint``, re-read when ``signature`` (the store's done-run count and
    latest finish time) changes."""
    return collect_from_store(get_manager().store, checkpoint, group=group, data_root=data_root)


def choose_results() -> tuple[str, AuditResults] | None:
    """Draw the source picker for the sidebar's checkpoint and group; None (with a message) when there is
    nothing to show."""
    choice = current()
    checkpoint = choice.checkpoint_path
    if not checkpoint:
        st.info("Choose a base checkpoint in the sidebar (or upload / train one on Models & data).")
        return None
    try:
        store = get_manager().store
        signature = (str(store.root), *store.done_signature())
        stored = _load_store(signature, checkpoint, choice.group, choice.data_root)
        sources = [SHIPPED_LABEL] if _shipped_for(checkpoint) and choice.group == load_shipped().meta.get(
            "group_attribute") else []
        if len(stored.runs):
            count = len(stored.runs)
            sources.append(f"Run store ({count} finished run{'' if count == 1 else 's'})")
        if not sources:
            st.info(f"No finished runs of {choice.checkpoint} grouped by {choice.group} yet. Queue some on "
                    f"the Linearize page (or below), or run `python -m fairlin_core sweep --checkpoint "
                    f"{checkpoint} --methods snl,random --budgets 10%,1% --seeds 0,1,2 --mitigation both`.")
            return None
        wanted_run = st.query_params.get("run")
        if wanted_run and len(stored.runs) and wanted_run in set(stored.runs["run_id"]) \
                and st.session_state.get("results_source.opened_run") != wanted_run:
            # a job card's link: open the run store's results on that run (once; the user may move on)
            st.session_state["results_source.opened_run"] = wanted_run
            st.session_state["results_source.source"] = sources[-1]
            st.session_state["results_source.open_run"] = wanted_run
        source = (st.radio("Results", sources, horizontal=True, key="results_source.source") if len(sources) > 1
                  else sources[0])
        if source == SHIPPED_LABEL:
            key, results = "shipped", load_shipped()
        else:
            key, results = repr((signature, checkpoint, choice.group)), stored
    except Exception as error:  # every error: one readable message, never a traceback
        show_error(error)
        return None
    protocols = {protocol.describe(): protocol for protocol in results.protocols()}
    if len(protocols) > 1:  # runs of different training protocols are never averaged into one series
        label = st.selectbox("Training protocol", list(protocols), key="results_source.recipe",
                             help="runs are compared only with runs trained the same way")
        key, results = f"{key}|{label}", results.of_protocol(protocols[label])
    _register(key, results)
    return key, results


def opened_run(results: AuditResults) -> dict | None:
    """The run a job card's link asked to open (``?run=<id>``), once: its method, budget and mitigation, for the
    page to select; None otherwise."""
    run_id = st.session_state.pop("results_source.open_run", None)
    if run_id is None or run_id not in set(results.runs["run_id"]):
        return None
    return results.runs[results.runs["run_id"] == run_id].iloc[0].to_dict()


def group_style(results: AuditResults, highlight: str | None = None) -> GroupStyle:
    """The groups' colours of these results (minority groups in the warm hues), greying all but ``highlight``
    (None or "none": no highlight)."""
    return GroupStyle.of(results.group_names, results.minority_groups(),
                         None if highlight in (None, "none") else highlight)


def source_caption(results: AuditResults) -> str:
    meta = results.meta
    runs = results.runs
    text = (f"{len(runs)} runs of {meta.get('checkpoint')} on {meta.get('dataset')} grouped by "
            f"{meta.get('group_attribute')}: methods {', '.join(dict.fromkeys(runs['method']))}; "
            f"seeds {', '.join(str(s) for s in sorted(runs['seed'].unique()))}.")
    if meta.get("regenerate"):
        text += f" Regenerate with `{meta['regenerate']}`."
    return text


@dataclass(frozen=True)
class Rows:
    """The rows a chart draws: ``view(results, *args)``, a typed view of :class:`AuditResults` (e.g.
    ``Rows(AuditResults.group_drop, (split, method, mitigation))``), narrowed to the rows where
    ``column == value`` for every ``(column, value)`` of ``where``."""

    view: Callable[..., pd.DataFrame]
    args: tuple = ()
    where: tuple[tuple[str, Any], ...] = ()

    def of(self, results: AuditResults) -> pd.DataFrame:
        rows = self.view(results, *self.args)
        for column, value in self.where:
            rows = rows[rows[column] == value]
        return rows

    def at(self, column: str, value: Any) -> "Rows":
        """These rows narrowed to ``column == value`` as well."""
        return Rows(self.view, self.args, (*self.where, (column, value)))


# functions (the figure, the Rows' view) are cached by their qualified name
_BY_NAME = {types.FunctionType: lambda function: f"{function.__module__}.{function.__qualname__}"}


@st.cache_resource(show_spinner=False, max_entries=512, hash_funcs=_BY_NAME)
def chart(key: str, figure: Callable, rows: Rows, *args, against: str | None = None, **kwargs):
    """``figure(rows.of(results), *args, **kwargs)`` for the results registered under ``key`` (``figure``: a
    function of :mod:`fairlin_core.viz.audit_figures`, or a readable table of :mod:`fairlin_core.viz.tables`);
    built once per input and shared (not copied: st.plotly_chart and st.dataframe only read them).
    ``against``: the key of other registered results (:func:`shipped_overlay`), whose same rows the figure
    draws as its ``reference``."""
    if against is not None:
        kwargs["reference"] = rows.of(_registry()[against])
    return figure(rows.of(_registry()[key]), *args, **kwargs)


def shipped_overlay(key: str) -> str | None:
    """On run-store results of the checkpoint and group attribute of the shipped default audit: the "Overlay
    the shipped default audit" toggle. Returns the shipped audit's registry key (for :func:`chart`'s
    ``against``) while it is on, else None (also on the shipped audit itself and on other checkpoints)."""
    choice = current()
    if key.startswith("shipped") or not _shipped_for(choice.checkpoint_path) \
            or choice.group != load_shipped().meta.get("group_attribute"):
        return None
    if not st.toggle("Overlay the shipped default audit", key="results_source.overlay",
                     help="draw the shipped audit's series for the same split, method and mitigation beside your "
                          "runs (dashed lines, grey-edged diamonds): a reference, never averaged with them"):
        return None
    _register("shipped", load_shipped())
    return "shipped"


def open_results(title: str) -> tuple[str, AuditResults]:
    """The head of a results page: its title, the source picker and a caption; stops the page when there is
    nothing to show."""
    st.title(title)
    chosen = choose_results()
    if chosen is None:
        st.stop()
    st.caption(source_caption(chosen[1]))
    return chosen
