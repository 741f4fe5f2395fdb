"""Linearizers: turn a base model into a ReLU-reduced model under a ReLU budget.

:func:`linearize` works on a model and its spec; :func:`linearize_checkpoint` on a
:class:`~fairlin_core.checkpoints.Checkpoint` in memory is the notebook's ``fl.linearize``.
"""

from .api import (METHODS, LinearizationResult, LinearizeOptions, Prepared, Student, finish, finish_selections,
                  linearize, linearize_sweep, prepare_students, resolve_budget, unique_budgets)
from .checkpoint import linearize_checkpoint
from .base import LINEARIZERS, Linearizer, Placement, get_linearizer, register_linearizer
from .deepreduce import DeepReduceConfig, apply_deepreduce, configuration_counts, nearest_configuration
from .random_masks import apply_random_masks
from .recipe import NO_MITIGATION, LinearizeRecipe
from .snl import SNLConfig, binarize_masks, snl_trajectory

__all__ = ["METHODS", "LinearizationResult", "LinearizeOptions", "Prepared", "Student", "finish", "finish_selections",
           "linearize", "linearize_sweep", "prepare_students", "resolve_budget", "unique_budgets",
           "LINEARIZERS", "Linearizer", "Placement", "get_linearizer", "register_linearizer",
           "DeepReduceConfig", "apply_deepreduce", "configuration_counts", "nearest_configuration",
           "apply_random_masks", "NO_MITIGATION", "LinearizeRecipe", "SNLConfig", "binarize_masks", "snl_trajectory", "linearize_checkpoint"]
