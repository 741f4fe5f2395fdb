"""The package version (one place; the sidecars and the notebook API read it)."""

__version__ = "0.1.0"
