"""The notebook surface: ``fl.linearize?`` and friends show the function's own signature and docstring, and no
import can replace an exported name with a submodule of the same name."""

import importlib
import inspect
import pkgutil

import fairlin_core as fl


def _packages() -> list:
    """fairlin_core and every package under it."""
    found = [fl]
    for info in pkgutil.walk_packages(fl.__path__, "fairlin_core."):
        if info.ispkg:
            found.append(importlib.import_module(info.name))
    return found


def test_every_exported_function_is_the_function_itself_with_its_signature_and_docstring():
    functions = [name for name in fl.__all__ if callable(getattr(fl, name)) and not inspect.isclass(getattr(fl, name))]
    assert {"linearize", "audit", "cost", "compare", "load_checkpoint"} <= set(functions)
    for name in functions:
        value = getattr(fl, name)
        module, _, attribute = fl._EXPORTS[name].partition(":")
        assert inspect.isfunction(value), name
        assert value is getattr(importlib.import_module(module), attribute), name  # its own signature and doc
        assert value.__doc__, name
        kinds = {p.kind for p in inspect.signature(value).parameters.values()}
        assert kinds != {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}, name


def test_the_notebook_functions_show_their_real_parameters():
    def names(function):
        return list(inspect.signature(function).parameters)[:3]
    assert names(fl.linearize) == ["base", "method", "budget"]
    assert names(fl.audit) == ["base", "linearized", "data"]
    assert names(fl.cost) == ["model", "profile", "input_shape"]
    assert fl.linearize.__doc__.startswith("Linearize ``base`` to ``budget`` ReLUs")
    assert fl.audit.__doc__ == importlib.import_module("fairlin_core.audits.core").audit.__doc__
    assert fl.cost.__doc__ == importlib.import_module("fairlin_core.costs.pricing").cost.__doc__


def test_importing_every_package_leaves_the_exports_alone():
    _packages()  # sets fairlin_core.<wing> (and each wing's submodules) as attributes of their parents
    assert all(inspect.isfunction(getattr(fl, name)) for name in ("linearize", "audit", "cost", "compare"))


def test_no_package_exports_a_name_of_its_own_submodules():
    clashes = {}
    for package in _packages():
        submodules = {info.name for info in pkgutil.iter_modules(package.__path__)}
        if shared := submodules & set(getattr(package, "__all__", ())):
            clashes[package.__name__] = sorted(shared)
    assert clashes == {}
