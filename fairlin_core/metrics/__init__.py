"""Per-group diagnostics; every function returns tidy pandas DataFrames.

Attributions (``fairlin_core.metrics.attributions``) are imported on demand: captum is slow to import.
"""

from .accuracy import evaluate_model, evaluate_split, group_accuracy, predict_logits
from .bound import group_losses, parameter_distance, theorem_bound
from .boundary import boundary_distances, boundary_summary
from .fairness import (bootstrap_accuracy_drop, bootstrap_group_accuracy, parity_gap, relative_accuracy_drop,
                       seed_summary, worst_group_accuracy)
from .gradients import group_gradient_norms, per_sample_gradient_norms, weight_parameters
from .hessian import (HessianOperator, LanczosResult, gaussian_density, group_hessian_density,
                      group_hessian_eigenvalues, lanczos, spectral_density, top_eigenvalues)

__all__ = ["evaluate_model", "evaluate_split", "group_accuracy", "predict_logits", "group_losses", "parameter_distance", "theorem_bound",
           "boundary_distances", "boundary_summary", "bootstrap_accuracy_drop", "bootstrap_group_accuracy",
           "parity_gap", "relative_accuracy_drop", "seed_summary", "worst_group_accuracy", "group_gradient_norms",
           "per_sample_gradient_norms", "weight_parameters", "HessianOperator", "LanczosResult", "gaussian_density",
           "group_hessian_density", "group_hessian_eigenvalues", "lanczos", "spectral_density", "top_eigenvalues"]
