"""Model zoo with linearizable activation sites and exact ReLU accounting."""

from .activation import (RELU_THRESHOLD, LinearizableReLU, activation_sites, get_masks, relu_count, set_masks,
                         site_table, total_sites)
from .registry import LIMITS, MAX_STATE_VALUES, MODELS, ModelSpec, build_model, resolve_spec, state_shapes

__all__ = ["RELU_THRESHOLD", "LinearizableReLU", "activation_sites", "get_masks", "relu_count", "set_masks",
           "site_table", "total_sites", "LIMITS", "MAX_STATE_VALUES", "MODELS", "ModelSpec", "build_model",
           "resolve_spec", "state_shapes"]
