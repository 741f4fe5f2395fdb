"""The jobs panel: live queue, progress, curves, cancel buttons and failures, polled by fragments.

State lives in the process-wide JobManager and its RunStore, so the panel survives page changes and
browser reloads; the fragments only read it.
"""

import os

import streamlit as st

from fairlin_core.errors import FairLinError
from fairlin_core.viz.figures import job_curve_figure
from fairlin_core.jobs import get_manager
from fairlin_core.jobs.ray_executor import ADDRESS_ENV
from ui.jobs_view import jobs_counts, jobs_overview, recorder_for, run_history

POLL_SECONDS = 1.0


def default_executor() -> str:
    """``ray`` when $FAIRLIN_RAY_ADDRESS is set, else ``local`` (threads of the dashboard's process)."""
    return "ray" if os.environ.get(ADDRESS_ENV) else "local"


def manager():
    """The process-wide manager of the run store ($FAIRLIN_STORE, else ./fairlin_runs) for the executor chosen on
    the Linearize page (session keys ``executor`` and ``ray_address``; default :func:`default_executor` and
    $FAIRLIN_RAY_ADDRESS). FairLinError when Ray is chosen but missing or unreachable."""
    executor = st.session_state.get("executor") or default_executor()
    if executor != "ray":
        return get_manager()
    return get_manager(executor="ray", ray_address=st.session_state.get("ray_address") or
                       os.environ.get(ADDRESS_ENV) or None)


@st.fragment(run_every=POLL_SECONDS)
def compact_jobs_panel(limit: int = 4) -> None:
    """Sidebar: counts per status and progress bars of the latest jobs."""
    st.subheader("Jobs", divider="gray")
    try:
        rows = jobs_overview(manager(), limit=50)
    except FairLinError as error:
        st.error(str(error))
        return
    if not rows:
        st.caption("No jobs yet: submit some on Linearize.")
        return
    st.caption(" · ".join(f"{n} {status}" for status, n in sorted(jobs_counts(rows).items())))
    for row in rows[:limit]:
        text = f"{row['label']} — {row['status']}"
        if row["status"] == "failed":
            st.caption(f":red[{text}]")
        else:
            st.progress(min(max(row["fraction"], 0.0), 1.0), text=text)


@st.fragment(run_every=POLL_SECONDS)
def jobs_panel(limit: int = 20, kind: str | None = None) -> None:
    """Full panel: every recent job with progress, live loss / ReLU curve, cancel button, readable failure.

    kind: only jobs of this kind (``linearize`` or ``train-base``; None = all).
    """
    try:
        mgr = manager()
        rows = jobs_overview(mgr, limit=limit, kind=kind)
    except FairLinError as error:
        st.error(str(error))
        return
    if not rows:
        st.info("No jobs yet. Submit one above; it appears here with its progress.")
        return
    counts = jobs_counts(rows)
    st.caption("Queue: " + " · ".join(f"{n} {status}" for status, n in sorted(counts.items())))
    for row in rows:
        # one container per job, keyed by its id, with the same shape whatever the status, so a
        # status change never leaves stale buttons or expanders behind
        with st.container(border=True, key=f"job_{row['id']}"):
            head, button = st.columns([5, 1])
            head.markdown(f"**{row['label']}** · `{row['id']}` · {row['status']}")
            with button:
                if row["active"] and st.button("Cancel", key=f"cancel_{row['id']}", icon=":material/cancel:"):
                    try:
                        mgr.cancel(row["id"])
                    except FairLinError as error:
                        st.error(str(error))
            curve = None
            if row["active"]:
                detail = f"{row['stage']}: {row['message']}" if row["message"] else row["stage"]
                st.progress(min(max(row["fraction"], 0.0), 1.0), text=detail)
                curve = recorder_for(mgr).curve(row["id"])
            elif row["status"] == "failed":
                st.error(f"Failed: {row['error']}")
            elif row["status"] == "done":
                if row["checkpoint"]:
                    st.success(f"Saved {row['checkpoint']}; it is now selectable as base checkpoint.")
                curve = run_history(mgr, row["id"])
            if curve is not None and not curve.empty and ({"loss", "relu_count"} & set(curve.columns)):
                with st.expander("Loss / ReLU-count curve"):
                    st.plotly_chart(job_curve_figure(curve, row["label"]), width="stretch",
                                    key=f"curve_{row['id']}")
