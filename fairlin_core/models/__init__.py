"""Model zoo with linearizable activation sites and exact ReLU accounting; instrumenting any nn.Module."""

from .activation import (RELU_THRESHOLD, LinearizableReLU, activation_sites, get_masks, mask_names, relu_count,
                         set_masks, set_stage_masks, site_table, total_sites)
from .instrumentation import CODE_MODEL, InstrumentReport, instrument
from .registry import LIMITS, MAX_STATE_VALUES, MODELS, ModelSpec, build_model, resolve_spec, state_shapes

__all__ = ["RELU_THRESHOLD", "LinearizableReLU", "activation_sites", "get_masks", "mask_names", "relu_count",
           "set_masks", "set_stage_masks", "site_table", "total_sites", "CODE_MODEL", "InstrumentReport", "instrument",
           "LIMITS", "MAX_STATE_VALUES", "MODELS", "ModelSpec", "build_model", "resolve_spec", "state_shapes"]
