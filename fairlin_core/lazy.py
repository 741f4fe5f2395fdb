"""Lazy package exports (PEP 562): a package's public names resolve to their modules on first use, so
importing the package costs nothing (the notebook API, the CLI's ``--help``, reading results without torch)."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, namespace: dict[str, Any], exports: dict[str, str]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` whose ``exports`` map a public name to
    ``"module:attribute"`` (``"module:"`` = the module itself). A resolved name is cached in ``namespace``
    (the package's globals), so later look-ups do not come back here."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = exports[name].partition(":")
        value = importlib.import_module(module)
        if attribute:
            value = getattr(value, attribute)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


def callable_wing(package: str, target: str) -> None:
    """Make the already imported ``package`` callable: calling it calls ``target`` ("module:function",
    imported at the first call). Importing ``fairlin_core.<wing>`` sets the wing as the attribute of
    ``fairlin_core`` of the same name, so a wing that shares its name with a notebook function (``audit``,
    ``linearize``) must answer that call itself: ``fl.linearize(...)`` then works whatever was imported."""
    module_name, _, function = target.partition(":")

    class CallableWing(types.ModuleType):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(importlib.import_module(module_name), function)(*args, **kwargs)

    CallableWing.__call__.__doc__ = f"Call :func:`{module_name}.{function}`."
    sys.modules[package].__class__ = CallableWing
