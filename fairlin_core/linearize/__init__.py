"""Linearizers: turn a base model into a ReLU-reduced model under a ReLU budget."""

from .deepreduce import DeepReduceConfig, apply_deepreduce

__all__ = ["DeepReduceConfig", "apply_deepreduce"]
