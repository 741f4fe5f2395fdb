"""Per-group diagnostics; every function returns tidy pandas DataFrames."""

from .accuracy import evaluate_split, group_accuracy, predict_logits

__all__ = ["evaluate_split", "group_accuracy", "predict_logits"]
