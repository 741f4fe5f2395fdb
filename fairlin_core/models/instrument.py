"""Instrument any ``nn.Module``: every ReLU becomes a :class:`LinearizableReLU` site (via ``torch.fx``).

Every ``nn.ReLU`` module call and every ``F.relu`` / ``torch.relu`` / ``Tensor.relu`` call (and their
in-place forms) in the symbolically traced graph is replaced by its own site; the site's shape comes
from one probe forward pass (batch of one, eval mode, no grad). A module called twice (torchvision's
BasicBlock calls ``relu`` after bn1 and after the add) gets two sites. Other activations (ReLU6, GELU,
SiLU, ...) are reported in :attr:`InstrumentReport.other_activations` and left alone: they are not
ReLUs, so they are neither counted nor linearized.

Sites get ``stage`` N when they sit under a module path containing ``layerN`` (torchvision ResNets),
else 0; ``role`` is ``output`` when the ReLU's input is an addition (a residual add), else ``inner``.

``code`` model specs (``--model-code package.module:factory``) rebuild such a model from the user's
factory: that imports and runs the user's Python, so it happens only for a factory the user named in
:func:`~fairlin_core.runtime.trust_model_code` (the CLI's ``--trust-model-code``, or the notebook by choice).
"""

from __future__ import annotations

import importlib
import json
import operator
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from ..errors import ModelError
from ..runtime import model_code_trusted
from .activation import LinearizableReLU, activation_sites

CODE_MODEL = "code"
FACTORY_PATTERN = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*")

RELU_FUNCTIONS = {F.relu: False, torch.relu: False, torch.relu_: True, F.relu_: True}
RELU_METHODS = {"relu": False, "relu_": True}
OTHER_MODULES = (nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU,
                 nn.PReLU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Sigmoid, nn.Tanh)
OTHER_FUNCTIONS = {F.relu6: "relu6", F.gelu: "gelu", F.silu: "silu", F.hardswish: "hardswish",
                   F.hardsigmoid: "hardsigmoid", F.leaky_relu: "leaky_relu", F.elu: "elu", F.selu: "selu",
                   F.mish: "mish", F.softplus: "softplus", F.hardtanh: "hardtanh", torch.sigmoid: "sigmoid",
                   torch.tanh: "tanh", F.sigmoid: "sigmoid", F.tanh: "tanh"}
ADDS = {operator.add, operator.iadd, torch.add}
_LAYER = re.compile(r"(?:^|\.)layer(\d+)(?:\.|$)")


@dataclass
class InstrumentReport:
    """What instrumenting found: the new sites (name -> shape without batch), their total size, and the
    other activations left alone (type or function name -> number of calls)."""

    model: str
    sites: dict[str, tuple[int, ...]]
    relu_count: int
    other_activations: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "sites": len(self.sites), "relu_count": self.relu_count,
                "other_activations": dict(self.other_activations)}


class _Tracer(fx.Tracer):
    """Leaves: torch.nn's own modules (the default) and existing FairLin sites."""

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return isinstance(module, LinearizableReLU) or super().is_leaf_module(module, qualified_name)


def _module_path(node: fx.Node) -> str:
    """Qualified name of the module whose forward issued ``node`` ('' at the top level)."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else ""


def _classify(node: fx.Node, modules: dict[str, nn.Module]) -> tuple[str, bool]:
    """("relu", in place) for a ReLU call, (label, False) for another activation, ("", False) otherwise."""
    if node.op == "call_module":
        module = modules[str(node.target)]
        if type(module) is nn.ReLU:
            return "relu", module.inplace
        return (type(module).__name__ if isinstance(module, OTHER_MODULES) else ""), False
    if node.op == "call_function":
        if node.target in RELU_FUNCTIONS:
            return "relu", RELU_FUNCTIONS[node.target] or bool(node.kwargs.get("inplace", False))
        return OTHER_FUNCTIONS.get(node.target, ""), False
    if node.op == "call_method":
        if node.target in RELU_METHODS:
            return "relu", RELU_METHODS[node.target]
        return (node.target if node.target in ("relu6", "sigmoid", "tanh") else ""), False
    return "", False


def _is_add(node: Any) -> bool:
    return isinstance(node, fx.Node) and ((node.op == "call_function" and node.target in ADDS)
                                          or (node.op == "call_method" and node.target in ("add", "add_")))


def _trace(model: nn.Module) -> fx.GraphModule:
    try:
        graph = _Tracer().trace(model)
    except Exception as error:  # fx raises TraceError, TypeError, NotImplementedError, ... naming the construct
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelError(f"cannot instrument {type(model).__name__}: torch.fx cannot trace it ({first}); expected "
                         f"a forward without data-dependent control flow (if/for on tensor values)") from None
    return fx.GraphModule(model, graph, class_name=type(model).__name__)


def instrument(model: nn.Module, input_shape: tuple[int, ...]) -> fx.GraphModule:
    """``model`` with every ReLU replaced by a site (all masks at 1: the same function as ``model``).

    input_shape: one input without the batch dimension, e.g. (3, 32, 32). The result is a
    ``torch.fx.GraphModule`` with the same parameter names as ``model`` plus ``<site>.alpha``, in the
    training mode ``model`` had, with an :class:`InstrumentReport` in ``.fairlin_report``.
    ModelError naming the first untraceable construct when ``torch.fx`` cannot trace the forward.
    """
    training = model.training
    graph_module = _trace(model)
    graph_module.eval()
    try:
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.zeros(1, *input_shape))
    except Exception as error:
        raise ModelError(f"the probe forward of {type(model).__name__} on input {tuple(input_shape)} failed "
                         f"({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); "
                         f"expected the input shape the model takes (without the batch dimension)") from None
    modules = dict(graph_module.named_modules())
    order = {node: index for index, node in enumerate(graph_module.graph.nodes)}
    others: Counter[str] = Counter()
    relus = []
    for node in graph_module.graph.nodes:
        kind, inplace = _classify(node, modules)
        if kind == "relu":
            relus.append((node, inplace))
        elif kind:
            others[kind] += 1
    taken = set(modules)
    sites: dict[str, tuple[int, ...]] = {}
    for node, inplace in relus:
        path = _module_path(node)
        base = path if node.op == "call_module" else ".".join(p for p in (path, node.name) if p)
        name, suffix = base, 1
        while name in sites or (name in taken and name != path):
            name, suffix = f"{base}_{suffix}", suffix + 1
        shape = tuple(int(s) for s in node.meta["tensor_meta"].shape[1:])
        stage = int(match.group(1)) if (match := _LAYER.search(path)) else 0
        source = node.args[0]
        role = "output" if _is_add(source) else "inner"
        graph_module.add_submodule(name, LinearizableReLU(shape, stage=stage, role=role))
        sites[name] = shape
        with graph_module.graph.inserting_after(node):
            site_node = graph_module.graph.call_module(name, (source,))
        node.replace_all_uses_with(site_node)
        if inplace and isinstance(source, fx.Node):  # later readers of the input saw the ReLU's result
            source.replace_all_uses_with(site_node, delete_user_cb=lambda user: user is not site_node
                                         and order.get(user, -1) > order[node])
        graph_module.graph.erase_node(node)
    graph_module.graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()
    graph_module.train(training)
    count = sum(site.alpha.numel() for _, site in activation_sites(graph_module))
    graph_module.fairlin_report = InstrumentReport(type(model).__name__, sites, count, dict(others))
    return graph_module


def code_options(options: dict[str, Any]) -> dict[str, Any]:
    """The validated options of a ``code`` spec: ``factory`` "package.module:function", JSON ``kwargs``."""
    factory, kwargs = options.get("factory"), options.get("kwargs") or {}
    unknown = sorted(set(options) - {"factory", "kwargs"})
    if unknown:
        raise ModelError(f"a model-code spec takes options factory and kwargs, got also {', '.join(unknown)}")
    if not isinstance(factory, str) or not FACTORY_PATTERN.fullmatch(factory):
        raise ModelError(f"model code {factory!r} is not of the form package.module:function "
                         f"(e.g. mymodels.cnn:build)")
    if not isinstance(kwargs, dict):
        raise ModelError(f"model-code kwargs must be a JSON object, got {kwargs!r}")
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ModelError(f"model-code kwargs must be JSON values (numbers, strings, lists), got {kwargs!r}") from error
    return {"factory": factory, "kwargs": dict(kwargs)}


def load_factory(factory: str):
    """The callable named "package.module:function"; ModelError in one line when it cannot be imported."""
    module_name, _, attribute = factory.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ModelError(f"model code {factory} cannot be imported ({type(error).__name__}: {error}); expected "
                         f"the package on the Python path (e.g. PYTHONPATH=folder)") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ModelError(f"model code {factory}: module {module_name} has no function {attribute}; "
                         f"expected a function returning an nn.Module")
    return function


def build_code_model(options: dict[str, Any], input_shape: tuple[int, ...]) -> fx.GraphModule:
    """Call the user's factory with its kwargs and instrument the result; only where model code is trusted."""
    options = code_options(options)
    if not model_code_trusted(options["factory"]):
        raise ModelError(f"this model is built by user code {options['factory']}, which runs only when you trust it: "
                         f"--trust-model-code {options['factory']} in the CLI, fl.trust_model_code("
                         f"{options['factory']!r}) in a notebook (the dashboard never runs model code)")
    model = load_factory(options["factory"])(**options["kwargs"])
    if not isinstance(model, nn.Module):
        raise ModelError(f"model code {options['factory']} returned {type(model).__name__}; expected an nn.Module")
    return instrument(model, input_shape)


def has_stages(model: nn.Module) -> bool:
    """Whether every site sits in a ResNet stage ``layer1..layer4`` or is a stem site (stage 0) before them."""
    stages = [site.stage for _, site in activation_sites(model)]
    return sorted(set(stages) - {0}) == [1, 2, 3, 4] and stages.count(0) <= 1
