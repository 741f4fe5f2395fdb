"""Private-inference cost model: what one inference of an instrumented model costs in communication (MB)
and latency (s), online and offline, under a protocol profile (:mod:`.profiles`, data files with their
sources in ``profiles/``); layer shapes and MACs (:mod:`.shapes`), pricing a layer table or a model
(:mod:`.pricing`; :func:`cost` is the notebook's ``fl.cost``) and the estimates of audit runs (:mod:`.runs`).

Names load on first use, so listing or validating profiles never imports torch.
"""

from ..lazy import lazy_exports

_EXPORTS = {
    **{name: f"fairlin_core.costs.profiles:{name}" for name in (
        "DEFAULT_PROFILE", "Profile", "list_profiles", "load_profile", "validate_profile")},
    **{name: f"fairlin_core.costs.pricing:{name}" for name in ("CostEstimate", "cost", "estimate")},
    **{name: f"fairlin_core.costs.shapes:{name}" for name in ("layer_table", "spec_layer_table")},
    **{name: f"fairlin_core.costs.runs:{name}" for name in ("base_cost", "pareto_front", "run_costs")},
}
__getattr__, __dir__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ = sorted(_EXPORTS)
