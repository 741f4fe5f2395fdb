"""Benchmark scripts: each prints a ratio against a baseline measured in the same run.

Run one as ``python benchmarks/NAME.py`` or ``python -m benchmarks.NAME`` from the repository root.
"""
