"""Toy lab: watch partial linearization bend a 2D decision boundary away from the minority (paper Fig. 2).

Training runs in the background (:class:`fairlin_core.toy.ToyJob`, a child process whose reports a
thread collects; the job is kept in session state); a fragment polls it while it runs, so the loss
curve and the boundaries refresh as the models train. The page itself only draws.
"""

import streamlit as st

from fairlin_core.data import DEFAULT_NOISE, LABEL_NOISE_SHAPES, RATIO_SHAPES, SHAPES
from ui.errors import show_error
from fairlin_core.toy import (MODEL_KINDS, ToyConfig, ToyJob, ToyResult, load_toy, one_dimensional_example,
                              points_table, prewarm)
from fairlin_core.viz import (accuracy_bars_figure, boundary_figure, loss_figure, piecewise_figure,
                                         share_sweep_figure)
from ui.shell import require_shell

require_shell()

JOB_KEY = "toy_lab.job"
SWEEP_KEY = "toy_lab.sweep_job"
SWEEP_SHARES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]
POLL_SECONDS = 1.0
SHAPE_NOTES = {"paper": "crescent minority (Figure 2)", "disk": "disk minority (counter-example)",
               "moons": "two moons", "circles": "concentric circles", "xor": "xor quadrants", "spiral": "two spirals"}
WHICH_NOTES = {"random": "random units", "neurons": "the same share in every layer", "last": "last layers first"}
MODE_NOTES = {"scratch": "train from scratch with fixed masks (paper)", "snl": "SNL on the trained ReLU model"}
TITLES = {"relu": "ReLU", "linearized": "Linearized"}


def controls() -> tuple[ToyConfig, range]:
    """The experiment chosen in the widgets (not validated) and its seeds."""
    left, middle, right = st.columns(3)
    with left:
        shape = st.selectbox("Dataset shape", SHAPES, key="toy_lab.shape",
                             format_func=lambda s: f"{s}: {SHAPE_NOTES[s]}")
        n = st.slider("Points", 200, 4000, 2000, step=100, key="toy_lab.n",
                      help="before the 60/20/20 train/val/test split")
        noise_help = ("share of labels flipped" if shape in LABEL_NOISE_SHAPES
                      else "standard deviation of the coordinate noise")
        noise = st.number_input("Noise", 0.0, 0.5, DEFAULT_NOISE[shape], step=0.01, key=f"toy_lab.noise_{shape}",
                                help=noise_help)
        ratio = None
        if shape in RATIO_SHAPES:
            ratio = st.slider("Minority points per majority point", 0.02, 1.0, 0.1, step=0.02, key="toy_lab.ratio")
        else:
            st.caption("The minority's share is set by its area for this shape (about 1:10).")
    with middle:
        depth = st.slider("Hidden layers", 1, 4, 2, key="toy_lab.depth")
        width = st.slider("Units per layer", 2, 64, 16, key="toy_lab.width")
        steps = st.slider("Training steps", 100, 4000, 2000, step=100, key="toy_lab.steps",
                          help="full-batch Adam, learning rate 1e-2 with cosine decay")
        count = st.slider("Seeds", 1, 10, 3, key="toy_lab.seeds",
                          help="each seed draws new data, initial weights and placement; results show mean ± sd")
        first = st.number_input("First seed", 0, 1_000_000, 0, key="toy_lab.first_seed")
    with right:
        linearized = st.slider("Share of ReLUs linearized", 0.0, 1.0, 0.5, step=0.05, key="toy_lab.linearized")
        mode = st.radio("How", list(MODE_NOTES), key="toy_lab.mode", format_func=MODE_NOTES.get)
        which = st.radio("Which units (from scratch)", list(WHICH_NOTES), key="toy_lab.which",
                         format_func=WHICH_NOTES.get, disabled=mode == "snl")
    config = ToyConfig(shape=shape, n=n, noise=noise, minority_ratio=ratio, depth=depth, width=width, steps=steps,
                       linearized=linearized, which="random" if mode == "snl" else which, mode=mode)
    return config, range(int(first), int(first) + count)


def start_job(key: str, config: ToyConfig, seeds: range, shares: list[float] | None = None) -> None:
    old = st.session_state.get(key)
    if old is not None:
        old.cancel()
    try:
        job = ToyJob(config, seeds, preview_every=max(1, config.steps // 10), shares=shares)
    except Exception as error:  # every error: one readable message, never a traceback
        show_error(error)
        return
    st.session_state[key] = job.start()


def stale_note(job: ToyJob, config: ToyConfig, seeds: range, ignore: tuple[str, ...] = ()) -> None:
    """A warning when the controls no longer match the settings the shown results were trained with."""
    changed = [name for name, value in vars(config).items()
               if name not in ignore and getattr(job.config, name) != value]
    if list(seeds) != job.seeds:
        changed.append("seeds")
    if changed:
        st.warning(f"Out of date: these results were trained before you changed {', '.join(changed)}. "
                   f"Press the button above to retrain with the current settings.", icon="⚠️")


def preview_boundaries(job: ToyJob, previews: dict) -> None:
    columns = st.columns(2)
    for column, kind in zip(columns, MODEL_KINDS):
        with column:
            if kind not in previews:
                st.info(f"{TITLES[kind]}: waiting for its first steps…")
                continue
            seed, grid = previews[kind]
            points = points_table(load_toy(job.config, seed), "test")
            st.plotly_chart(boundary_figure(grid, points, f"{TITLES[kind]} (seed {seed}, training)"),
                            width="stretch", key=f"toy_lab.preview_{kind}")


def progress_and_stop(job: ToyJob, stop_key: str) -> dict:
    """A running job's progress bar and Stop button (a full rerun once it has ended); returns its snapshot."""
    state = job.snapshot()
    if not state["running"]:
        st.rerun()
    st.progress(state["fraction"], text=state["message"])
    if st.button("Stop", key=stop_key):
        job.cancel()
    return state


@st.fragment(run_every=POLL_SECONDS)
def live_panel(job: ToyJob) -> None:
    """Progress, live loss curve and boundaries while ``job`` runs; a full rerun once it ends."""
    state = progress_and_stop(job, "toy_lab.stop")
    preview_boundaries(job, state["previews"])
    if len(state["loss"]):
        st.plotly_chart(loss_figure(state["loss"]), width="stretch", key="toy_lab.live_loss")


def results_panel(result: ToyResult) -> None:
    """Boundaries of one seed side by side, per-group accuracy over seeds, linear regions, margins, loss."""
    seed = st.selectbox("Boundaries of seed", result.seeds, key="toy_lab.view_seed")
    columns = st.columns(2)
    test = result.accuracy[(result.accuracy["split"] == "test") & (result.accuracy["seed"] == seed)]
    for column, kind in zip(columns, MODEL_KINDS):
        rows = test[test["model"] == kind].set_index("group")["accuracy"]
        title = f"{TITLES[kind]}: minority {rows['minority']:.1%}, majority {rows['majority']:.1%}"
        with column:
            st.plotly_chart(boundary_figure(result.boundary(seed, kind), result.points(seed, kind), title),
                            width="stretch", key=f"toy_lab.boundary_{kind}")
    split = st.radio("Accuracy on", ["test", "train"], horizontal=True, key="toy_lab.split")
    st.plotly_chart(accuracy_bars_figure(result.summary(split), f"{split.capitalize()} accuracy per group, mean ± sd "
                                                                f"over {len(result.seeds)} seed(s)"),
                    width="stretch", key="toy_lab.accuracy")
    geometry = result.geometry_summary()
    st.subheader("Expressiveness: fewer ReLUs, fewer linear regions")
    for column, kind in zip(st.columns(2), MODEL_KINDS):
        row = geometry.loc[kind]
        with column:
            st.metric(f"{TITLES[kind]}: ReLUs", f"{row['relu_count']:.0f} of {row['total_units']:.0f}")
            st.metric("linear regions crossed on the diagonal", f"{row['regions_along_line']:.1f}")
            st.metric("activation patterns on a 200x200 grid", f"{row['patterns_on_grid']:.1f}")
    st.caption("Means over seeds. A linearized unit is the identity everywhere, so it never splits a region.")
    st.subheader("Distance to the decision boundary (test, mean over seeds)")
    st.dataframe(result.margin_summary(), hide_index=True, width="stretch",
                 column_config={"input_margin_mean": st.column_config.NumberColumn("input-space distance",
                                                                                   format="%.3f"),
                                "softmax_margin_mean": st.column_config.NumberColumn("p_top1 - p_top2",
                                                                                     format="%.3f")})
    st.plotly_chart(loss_figure(result.history), width="stretch", key="toy_lab.loss")
    st.caption(f"Boundary titles give that seed's test accuracy. {result.seconds_per_model():.2f} s per model "
               f"on this machine.")


def outcome_panel(job: ToyJob, show) -> None:
    state = job.snapshot()
    if state["error"]:
        st.error(state["error"])
    elif state["cancelled"]:
        st.warning("Training stopped; press the button above to start again.")
    elif state["result"] is not None:
        show(state["result"])


@st.fragment(run_every=POLL_SECONDS)
def sweep_progress(job: ToyJob) -> None:
    progress_and_stop(job, "toy_lab.sweep_stop")


def sweep_panel(sweep) -> None:
    summary = sweep.summary("test")
    st.plotly_chart(share_sweep_figure(summary, f"Test accuracy as more ReLUs are linearized ({sweep.config.shape}, "
                                                f"mean ± sd over {len(sweep.seeds)} seed(s))"),
                    width="stretch", key="toy_lab.sweep_figure")
    wide = sweep.wide("test")
    st.dataframe((100 * wide).rename(index=lambda s: f"{s:.0%}").round(1), width="stretch",
                 column_config={name: st.column_config.NumberColumn(f"{name} (%)", format="%.1f")
                                for name in wide.columns})


def sweep_tab(config: ToyConfig, seeds: range) -> None:
    st.markdown("Train the same experiment at a series of linearized shares (the ReLU model is share 0) and see "
                "whose accuracy falls first. Uses the settings of the *Decision boundaries* tab (its share "
                "slider aside); each share trains one model per seed.")
    shares = st.multiselect("Shares of hidden units linearized", SWEEP_SHARES, default=SWEEP_SHARES,
                            format_func=lambda s: f"{s:.0%}", key="toy_lab.sweep_shares")
    if st.button(f"Sweep {len(shares)} shares x {len(seeds)} seed(s)", type="primary", key="toy_lab.sweep_run",
                 disabled=not shares):
        start_job(SWEEP_KEY, config, seeds, shares)
    job = st.session_state.get(SWEEP_KEY)
    if job is not None and job.running:
        sweep_progress(job)
    elif job is not None:
        stale_note(job, config, seeds, ignore=("linearized",))
        outcome_panel(job, sweep_panel)


def pieces_panel() -> None:
    st.markdown("A network with one hidden layer of two units on a 1D input. Each ReLU bends the output once, so "
                "two ReLUs give at most **3 linear pieces**. A linearized unit adds a straight line: its bend is "
                "gone and **2 pieces** remain (Proposition 4.2 and Appendix B.1 of the paper).")
    choice = st.radio("Linearize", ["unit 1", "unit 2", "both"], index=1, horizontal=True, key="toy_lab.b1_unit")
    linearized = {"unit 1": (0,), "unit 2": (1,), "both": (0, 1)}[choice]
    left, right = st.columns(2)
    with left:
        example = one_dimensional_example()
        st.plotly_chart(piecewise_figure(example, f"2 ReLUs: {example.pieces} linear pieces"), width="stretch",
                        key="toy_lab.b1_relu")
    with right:
        example = one_dimensional_example(linearized)
        st.plotly_chart(piecewise_figure(example, f"{choice} linearized: {example.pieces} linear piece"
                                                  f"{'s' if example.pieces != 1 else ''}"),
                        width="stretch", key="toy_lab.b1_linearized")


st.title("Toy lab: who pays when ReLUs go?")
st.markdown("A small ReLU network separates a majority (blue) from a minority (red). Linearize a share of its "
            "ReLUs and the boundary loses bends; the points it gives up are mostly the minority's. Runs several "
            "seeds, because single runs vary a lot.")
boundaries_tab, sweep_tab_, pieces_tab = st.tabs(["Decision boundaries", "Sweep the share",
                                                   "Why fewer pieces (Appendix B.1)"])
with boundaries_tab:
    config, seeds = controls()
    buttons = st.columns([1, 3, 3])  # wide enough for "Disk counter-example" at 800 px
    if buttons[0].button("Train", type="primary", key="toy_lab.train"):
        start_job(JOB_KEY, config, seeds)
    buttons[1].button("Disk counter-example", key="toy_lab.disk", on_click=st.session_state.update,
                      kwargs={"toy_lab.shape": "disk"}, help="a convex minority: linearization costs it little")
    job = st.session_state.get(JOB_KEY)
    if job is not None and job.running:
        live_panel(job)
    else:
        prewarm()  # the next Train click then starts without waiting for torch to import
        if job is not None:
            stale_note(job, config, seeds)
            outcome_panel(job, results_panel)
with sweep_tab_:
    sweep_tab(config, seeds)
with pieces_tab:
    pieces_panel()
