"""2D teaching experiments (the paper's Figure 2 and Appendix B.1) in three parts by job:
:mod:`.training` (data, masks, training, multi-seed runs), :mod:`.geometry` (decision grids, linear
regions, the 1D example) and :mod:`.worker` (:class:`ToyJob`, a run in a child process for a UI)."""

from .geometry import (B1_WEIGHTS, GRID_PAD, BoundaryGrid, Piecewise1D, activation_patterns, count_patterns,
                       data_extent, decision_grid, geometry_row, one_dimensional_example, patterns_on_grid,
                       regions_along_segment)
from .training import (MODEL_KINDS, MODES, SPLITS, WHICH, ToyConfig, ToyResult, accuracy_rows, linearization_masks,
                       load_toy, margin_rows, points_table, run_toy, share_sweep, snl_linearize,
                       train_toy_model, ToySweep)

_WORKER = ("ToyJob", "prewarm")


def __getattr__(name: str):
    # The worker module is imported on first use only: ``python -m fairlin_core.toy.worker`` must find it
    # not yet imported when it runs as the child's main module.
    if name in _WORKER:
        from . import worker
        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["B1_WEIGHTS", "GRID_PAD", "MODEL_KINDS", "MODES", "SPLITS", "WHICH", "BoundaryGrid", "Piecewise1D",
           "ToyConfig", "ToyJob", "ToyResult", "accuracy_rows", "activation_patterns", "count_patterns",
           "data_extent", "decision_grid", "geometry_row", "linearization_masks", "load_toy", "margin_rows",
           "one_dimensional_example", "patterns_on_grid", "prewarm", "regions_along_segment", "points_table",
           "run_toy", "share_sweep", "snl_linearize", "train_toy_model", "ToySweep"]
