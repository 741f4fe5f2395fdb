"""Lazy package exports (PEP 562): a package's public names resolve to their modules on first use, so
importing the package costs nothing (the notebook API, the CLI's ``--help``, reading results without torch).

An exported name is never also the name of one of the package's submodules: importing ``package.name``
would set the attribute ``package.name`` to that submodule, hiding the export (``tests/test_surface.py``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], exports: dict[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose ``exports`` map a public name to
    ``"module:attribute"``. A resolved name is cached in ``namespace``
    (the package's globals), so later look-ups do not come back here."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = exports[name].partition(":")
        value = getattr(importlib.import_module(module), attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__

