"""Linearize: choose method, ReLU budget, seeds, epochs and mitigation; submit jobs; watch the jobs panel."""

import os

import streamlit as st

from ui.errors import show_error
from fairlin_core.jobs import ADDRESS_ENV, EXECUTORS
from fairlin_core.linearizers import METHODS
from ui.form_state import persist, restore
from ui.linearize_form import (BUDGET_PRESETS, BUDGET_STEPS, DEFAULT_MITIGATION, DEFAULT_SELECT, FORM_RECIPE,
                               MITIGATION_METHODS, MITIGATION_MODES, SELECT_RULES, budget_preview, form_diagnostics,
                               form_mitigations, nearest_step, preselected_diagnostics, submit_form)
from ui.jobs_panel import default_executor, jobs_panel, manager
from ui.shell import require_shell
from ui.state import current

require_shell()

METHOD_NOTES = {"snl": "SNL: learned per-pixel masks", "deepreduce": "DeepReDuce: cull/thin whole stages",
                "random": "random ReLU placement (baseline)"}
EXECUTOR_NOTES = {"local": "this machine (threads)", "ray": "Ray cluster"}
MITIGATION_NOTES = {"off": "off (plain KD finetune)", "on": "on (mitigated finetune)",
                    "both": "both (one job each)"}
METHOD_MITIGATION_NOTES = {"lagrangian": "Lagrangian (paper's Algorithm 1)", "reweight": "group reweighting",
                           "groupdro": "group DRO"}
SELECT_NOTES = {"auto": "constrained when mitigated, else overall", "overall": "best overall accuracy", "worst-group": "best worst-group accuracy",
                "constrained": "best overall with worst group near its best"}

st.title("Linearize")
choice = current()
checkpoint = choice.checkpoint_path
if not checkpoint:
    st.info("Choose a base checkpoint in the sidebar (or upload / train one on Models & data).")
    st.stop()

try:
    base = budget_preview(checkpoint, "random", 1)["base_count"]
except Exception as error:  # every error: one readable message, never a traceback
    show_error(error)
    st.stop()


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def _words(text: str) -> list[str]:
    return [v for v in text.split(",") if v in form_diagnostics()]


FIELDS = {"linearize.method": (lambda t: t if t in METHODS else METHODS[0], str),
          "linearize.budget_count": (int, str), "linearize.seeds": (_ints, lambda v: ",".join(str(i) for i in v)),
          "linearize.snl_epochs": (int, str), "linearize.finetune_epochs": (int, str),
          "linearize.mitigation": (lambda t: t if t in MITIGATION_MODES else "off", str),
          "linearize.mu": (float, str), "linearize.diagnostics": (_words, ",".join)}
restore({k: parse for k, (parse, _) in FIELDS.items()})
for field, default in (("linearize.seeds", [FORM_RECIPE.seed]), ("linearize.snl_epochs", FORM_RECIPE.snl.epochs),
                       ("linearize.finetune_epochs", FORM_RECIPE.finetune.epochs),
                       ("linearize.mu", DEFAULT_MITIGATION.mu), ("linearize.diagnostics", preselected_diagnostics())):
    st.session_state.setdefault(field, default)  # defaults here, not on the widgets: a restored value wins


def _from_percent() -> None:
    st.session_state["linearize.budget_count"] = max(1, round(st.session_state["linearize.budget_pct"] * base / 100))


def _from_count() -> None:
    st.session_state["linearize.budget_pct"] = nearest_step(100 * st.session_state["linearize.budget_count"] / base)


def _from_preset() -> None:
    preset = st.session_state.get("linearize.budget_preset")
    if preset is not None:
        st.session_state["linearize.budget_pct"] = float(preset)
        _from_percent()


if st.session_state.get("linearize.budget_base") != base:  # a new checkpoint: start at 10% of its ReLUs
    st.session_state["linearize.budget_base"] = base
    restored = st.session_state.get("linearize.budget_count")
    if isinstance(restored, int) and 1 <= restored <= base:  # a count restored from the address bar
        _from_count()
    else:
        st.session_state["linearize.budget_pct"] = 10.0
        _from_percent()

left, right = st.columns(2)
with left:
    method = st.radio("Method", METHODS, key="linearize.method", format_func=METHOD_NOTES.get, horizontal=True)
    st.pills("Budget presets (% of the base model's ReLUs)", BUDGET_PRESETS, key="linearize.budget_preset",
                         format_func=lambda p: f"{p:g}%", on_change=_from_preset)
    st.select_slider("ReLUs kept (% of base, log scale; fewer to the right)", list(reversed(BUDGET_STEPS)),
                     key="linearize.budget_pct", format_func=lambda p: f"{p:g}%", on_change=_from_percent)
    count = st.number_input(f"Exact ReLU count (of {base:,})", 1, base, step=1, key="linearize.budget_count",
                            on_change=_from_count)
    try:
        preview = budget_preview(checkpoint, method, int(count))
    except Exception as error:  # every error: one readable message, never a traceback
        show_error(error)
        st.stop()
    st.info(preview["text"], icon=":material/info:")
with right:
    seeds = st.multiselect("Seeds", list(range(10)), key="linearize.seeds")
    epochs_left, epochs_right = st.columns(2)
    snl_epochs = epochs_left.number_input("SNL epochs (max)", 1, 500, key="linearize.snl_epochs",
                                          disabled=method != "snl", help="Only SNL learns masks.")
    finetune_epochs = epochs_right.number_input("Finetune epochs", 0, 500, key="linearize.finetune_epochs")
    if finetune_epochs == 0:
        st.warning("Finetune epochs is 0: the linearized model is not finetuned after its ReLUs are removed, so its "
                   "accuracy (and every group's) reflects the raw cut, not what a deployed model would reach.")
    mitigation = st.radio("Mitigation", MITIGATION_MODES, key="linearize.mitigation", format_func=MITIGATION_NOTES.get,
                          horizontal=True)
    method_mitigation = st.selectbox("Mitigation method", MITIGATION_METHODS, key="linearize.mitigation_method",
                                     format_func=lambda m: METHOD_MITIGATION_NOTES.get(m, m),
                                     disabled=mitigation == "off")
    mu = st.number_input("mu (multiplier step size)", 0.0001, 10.0, step=0.001, format="%.4f",
                         key="linearize.mu", disabled=mitigation == "off" or method_mitigation != "lagrangian")
    select = st.selectbox("Model selection (validation split)", SELECT_RULES, key="linearize.select",
                          index=SELECT_RULES.index(DEFAULT_SELECT), format_func=lambda r: f"{r}: {SELECT_NOTES[r]}")
    diagnostics = st.multiselect("Diagnostics (for the Why page)", form_diagnostics(), key="linearize.diagnostics",
                                 help="computed on each saved model on the test split; the Why page draws them for "
                                      "these runs (attr: attribution maps)")
    executor = st.radio("Run on", EXECUTORS, index=EXECUTORS.index(default_executor()), key="linearize.executor",
                        format_func=EXECUTOR_NOTES.get, horizontal=True,
                        help="Ray runs each job as a Ray task; results come back to this machine's run store.")
    if executor == "ray":
        st.text_input("Ray address", os.environ.get(ADDRESS_ENV, ""), key="linearize.ray_address",
                      placeholder="auto or HOST:PORT (empty: a local Ray instance)")
    jobs = len(seeds) * len(form_mitigations(mitigation, method_mitigation))
    if st.button(f"Submit {jobs} job{'s' if jobs != 1 else ''}", type="primary", key="linearize.submit", disabled=not jobs,
                 icon=":material/send:"):
        try:
            ids = submit_form(manager(), checkpoint, method, int(count), seeds, mode=mitigation,
                              mitigation_method=method_mitigation, mu=float(mu), snl_epochs=int(snl_epochs),
                              finetune_epochs=int(finetune_epochs), select=select, diagnostics=diagnostics,
                              group=choice.group, data_root=choice.data_root)
        except Exception as error:  # every error: one readable message, never a traceback
            show_error(error)
        else:
            st.success(f"Submitted {len(ids)} job(s): {', '.join(ids)} (identical runs are reused).")

persist({k: text for k, (_, text) in FIELDS.items()})

st.header("Jobs")
jobs_panel()
