"""The jobs panel: live queue, progress, curves, cancel buttons and failures, polled by fragments.

State lives in the process-wide JobManager and its RunStore, so the panel survives page changes and
browser reloads; the fragments only read it.
"""

import os

import streamlit as st

from ui.errors import show_error
from fairlin_core.viz import job_curve_figure
from fairlin_core.jobs import ADDRESS_ENV, get_manager
from ui.jobs_view import jobs_counts, jobs_overview, recorder_for, run_history

POLL_SECONDS = 1.0


def default_executor() -> str:
    """``ray`` when $FAIRLIN_RAY_ADDRESS is set, else ``local`` (threads of the dashboard's process)."""
    return "ray" if os.environ.get(ADDRESS_ENV) else "local"


def manager():
    """The process-wide manager of the run store ($FAIRLIN_STORE, else ./fairlin_runs) for the executor chosen on
    the Linearize page (session keys ``executor`` and ``ray_address``; default :func:`default_executor` and
    $FAIRLIN_RAY_ADDRESS). FairLinError when Ray is chosen but missing or unreachable."""
    executor = st.session_state.get("linearize.executor") or default_executor()
    if executor != "ray":
        return get_manager()
    return get_manager(executor="ray", ray_address=st.session_state.get("linearize.ray_address") or
                       os.environ.get(ADDRESS_ENV) or None)


def _rows(limit: int, kind: str | None = None) -> list[dict] | None:
    try:
        return jobs_overview(manager(), limit=limit, kind=kind)
    except Exception as error:  # every error: one readable message, never a traceback
        show_error(error)
        return None


def _polled(draw, limit: int, kind: str | None, *extra) -> None:
    """Draw ``draw(rows, *extra)`` of the latest ``limit`` jobs (of ``kind``) once, or in a fragment re-run every
    second while any job is active; when the last active job ends the app reruns once, so an idle panel costs
    the server nothing."""
    rows = _rows(limit, kind)
    if rows and any(row["active"] for row in rows):
        _live(draw.__name__, limit, kind, *extra)  # by name: a fragment's arguments stay plain values
    elif rows is not None:
        draw(rows, *extra)


@st.fragment(run_every=POLL_SECONDS)
def _live(name: str, limit: int, kind: str | None, *extra) -> None:
    rows = _rows(limit, kind)
    if rows is None:
        return
    _PANELS[name](rows, *extra)
    if not any(row["active"] for row in rows):
        st.rerun()  # the whole app: the panel is drawn once more, without polling


def compact_jobs_panel(limit: int = 4) -> None:
    """Sidebar: counts per status and progress bars of the latest jobs."""
    st.subheader("Jobs", divider="gray")
    _polled(_draw_compact, 50, None, limit)


def _draw_compact(rows: list[dict], shown: int) -> None:
    if not rows:
        st.caption("No jobs yet: submit some on Linearize.")
        return
    st.caption(" · ".join(f"{n} {status}" for status, n in sorted(jobs_counts(rows).items())))
    for row in rows[:shown]:
        text = f"{row['label']} — {row['status']}"
        if row["status"] == "failed":
            st.caption(f":red[{text}]")
        else:
            st.progress(min(max(row["fraction"], 0.0), 1.0), text=text)


def jobs_panel(limit: int = 20, kind: str | None = None) -> None:
    """Full panel: every recent job with its stage, progress and ETA, live loss / ReLU curve, cancel button,
    readable failure, and the accuracies of finished runs.

    kind: only jobs of this kind (``linearize`` or ``train-base``; None = all).
    """
    _polled(_draw_jobs, limit, kind)


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f" · about {seconds / 60:.0f} min left" if seconds >= 90 else f" · about {seconds:.0f} s left"


def _draw_jobs(rows: list[dict]) -> None:
    mgr = manager()
    if not rows:
        st.info("No jobs yet. Submit one above; it appears here with its progress.")
        return
    counts = jobs_counts(rows)
    st.caption("Queue: " + " · ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for row in rows:
        # one container per job, keyed by its id, with the same shape whatever the status, so a
        # status change never leaves stale buttons or expanders behind
        with st.container(border=True, key=f"jobs_panel.job_{row['id']}"):
            head, button = st.columns([5, 1])
            head.markdown(f"**{row['label']}** · `{row['id']}` · {row['status']}")
            with button:
                if row["active"] and st.button("Cancel", key=f"jobs_panel.cancel_{row['id']}",
                                               icon=":material/cancel:"):
                    try:
                        mgr.cancel(row["id"])
                    except Exception as error:  # every error: one readable message, never a traceback
                        show_error(error)
            curve = None
            if row["active"]:
                detail = f"{row['stage']}: {row['message']}" if row["message"] else row["stage"]
                st.progress(min(max(row["fraction"], 0.0), 1.0), text=detail + _eta(row["eta_seconds"]))
                curve = recorder_for(mgr).curve(row["id"])
            elif row["status"] == "failed":
                st.error(f"Failed: {row['error']}")
            elif row["status"] == "done":
                if row["checkpoint"]:
                    st.success(f"Saved {row['checkpoint']}; it is now selectable as base checkpoint.")
                elif row["overall_accuracy"] is not None:
                    st.markdown(f"Test accuracy **{row['overall_accuracy']:.1%}** overall, worst group "
                                f"**{row['worst_group_accuracy']:.1%}**")
                    st.page_link("pages/audit.py", label="Open the audit on this run", icon=":material/bar_chart:",
                                 query_params={"run": row["id"]})
                curve = run_history(mgr, row["id"])
            if curve is not None and not curve.empty and ({"loss", "relu_count"} & set(curve.columns)):
                with st.expander("Loss / ReLU-count curve"):
                    st.plotly_chart(job_curve_figure(curve, row["label"]), width="stretch",
                                    key=f"jobs_panel.curve_{row['id']}")


_PANELS = {"_draw_compact": _draw_compact, "_draw_jobs": _draw_jobs}
