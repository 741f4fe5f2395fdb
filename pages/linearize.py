"""Linearize: choose method, ReLU budget, seeds, epochs and mitigation; submit jobs; watch the jobs panel."""

import streamlit as st

from fairlin_core.errors import FairLinError
from fairlin_core.finetune import DEFAULT_MU
from fairlin_core.linearize import METHODS
from ui.linearize_form import (DEFAULT_SELECT, MITIGATION_METHODS, MITIGATION_MODES, SELECT_RULES, budget_preview,
                               job_configs, submit_jobs)
from ui.jobs_panel import jobs_panel, manager
from ui.shell import require_shell
from ui.state import current

require_shell()

METHOD_NOTES = {"snl": "SNL: learned per-pixel masks", "deepreduce": "DeepReDuce: cull/thin whole stages",
                "random": "random ReLU placement (baseline)"}
MITIGATION_NOTES = {"off": "off (plain KD finetune)", "on": "on (mitigated finetune)",
                    "both": "both (one job each)"}
METHOD_MITIGATION_NOTES = {"lagrangian": "Lagrangian (paper's Algorithm 1)", "reweight": "group reweighting",
                           "groupdro": "group DRO"}
SELECT_NOTES = {"auto": "constrained when mitigated, else overall", "overall": "best overall accuracy", "worst-group": "best worst-group accuracy",
                "constrained": "best overall with worst group near its best"}

st.title("Linearize")
choice = current()
checkpoint = choice["checkpoint_path"]
if not checkpoint:
    st.info("Choose a base checkpoint in the sidebar (or upload / train one on Models & data).")
    st.stop()

try:
    base = budget_preview(checkpoint, "random", 1)["base_count"]
except FairLinError as error:
    st.error(str(error))
    st.stop()


def _from_percent() -> None:
    st.session_state["budget_count"] = max(1, round(st.session_state["budget_pct"] * base / 100))


def _from_count() -> None:
    st.session_state["budget_pct"] = min(100.0, max(0.1, round(100 * st.session_state["budget_count"] / base, 1)))


if st.session_state.get("budget_base") != base:  # a new checkpoint: start at 10% of its ReLUs
    st.session_state["budget_base"] = base
    st.session_state["budget_pct"] = 10.0
    _from_percent()

left, right = st.columns(2)
with left:
    method = st.radio("Method", METHODS, key="method", format_func=METHOD_NOTES.get, horizontal=True)
    st.slider("ReLU budget (% of the base model's ReLUs)", 0.1, 100.0, step=0.1, key="budget_pct",
              on_change=_from_percent)
    count = st.number_input(f"Exact ReLU count (of {base:,})", 1, base, step=1, key="budget_count",
                            on_change=_from_count)
    try:
        preview = budget_preview(checkpoint, method, int(count))
    except FairLinError as error:
        st.error(str(error))
        st.stop()
    st.info(preview["text"], icon=":material/info:")
with right:
    seeds = st.multiselect("Seeds", list(range(10)), default=[0], key="seeds")
    epochs_left, epochs_right = st.columns(2)
    snl_epochs = epochs_left.number_input("SNL epochs (max)", 1, 500, 30, key="snl_epochs",
                                          disabled=method != "snl", help="Only SNL learns masks.")
    finetune_epochs = epochs_right.number_input("Finetune epochs", 0, 500, 10, key="finetune_epochs")
    mitigation = st.radio("Mitigation", MITIGATION_MODES, key="mitigation", format_func=MITIGATION_NOTES.get,
                          horizontal=True)
    method_mitigation = st.selectbox("Mitigation method", MITIGATION_METHODS, key="mitigation_method",
                                     format_func=lambda m: METHOD_MITIGATION_NOTES.get(m, m),
                                     disabled=mitigation == "off")
    mu = st.number_input("mu (multiplier step size)", 0.0001, 10.0, DEFAULT_MU, step=0.001, format="%.4f",
                         key="mu", disabled=mitigation == "off" or method_mitigation != "lagrangian")
    select = st.selectbox("Model selection (validation split)", SELECT_RULES, key="select",
                          index=SELECT_RULES.index(DEFAULT_SELECT), format_func=lambda r: f"{r}: {SELECT_NOTES[r]}")
    jobs = len(seeds) * (2 if mitigation == "both" else 1)
    if st.button(f"Submit {jobs} job{'s' if jobs != 1 else ''}", type="primary", key="submit", disabled=not jobs,
                 icon=":material/send:"):
        try:
            configs = job_configs(checkpoint, method, int(count), seeds, snl_epochs=int(snl_epochs),
                                  finetune_epochs=int(finetune_epochs), mitigation=mitigation, mu=float(mu),
                                  method_mitigation=method_mitigation, select=select,
                                  group=choice["group"], data_root=choice["data_root"])
            ids = submit_jobs(manager(), configs)
        except FairLinError as error:
            st.error(str(error))
        except Exception as error:  # never a traceback on the page
            st.error(f"Could not submit the jobs: {type(error).__name__}: {error}")
        else:
            st.success(f"Submitted {len(ids)} job(s): {', '.join(ids)} (identical runs are reused).")

st.header("Jobs")
jobs_panel()
