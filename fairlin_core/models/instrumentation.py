"""Instrument any ``nn.Module``: every ReLU becomes a :class:`LinearizableReLU` site (via ``torch.fx``).

Every ReLU in the symbolically traced graph is replaced by its own site: ``nn.ReLU`` (and ``nn.Threshold(0, 0)``)
module calls, ``F.relu`` / ``torch.relu`` / ``Tensor.relu`` calls, and the ReLUs written another way:
``clamp`` / ``clip`` / ``clamp_min`` with ``min=0`` and no ``max``, ``torch.maximum`` / ``torch.max`` /
``torch.fmax`` of the input and a zero (``torch.zeros_like(x)``, ``torch.zeros(..., device=x.device)``,
``x.new_zeros(...)``, ``torch.full_like(x, 0)`` or a zero constant or buffer, not a parameter: that one is
learned) that does not broadcast the input larger, and ``F.threshold(x, 0, 0)``, all with their in-place forms.
The site's shape comes from one probe forward pass (batch of one, eval mode, no grad). A module called twice
(torchvision's BasicBlock calls ``relu`` after bn1 and after the add) gets two sites. Other elementwise
nonlinearities (ReLU6, GELU, SiLU, a clamp to another range, ``clamp_max``, a maximum or minimum of two tensors,
abs, ..., in place or not) are reported in :attr:`InstrumentReport.other_activations` and left alone: they are
not ReLUs, so they are neither counted nor linearized.

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

from ..errors import ModelError, brief
from ..runtime import check_factory, model_code_trusted
from .activation import LinearizableReLU, activation_sites

CODE_MODEL = "code"

RELU_FUNCTIONS = {F.relu: False, torch.relu: False, torch.relu_: True, F.relu_: True}
RELU_METHODS = {"relu": False, "relu_": True}
# clamp-like calls (function or method name -> in place): a ReLU when min is 0 and there is no max
CLAMPS = {"clamp": False, "clip": False, "clamp_min": False, "clamp_": True, "clip_": True, "clamp_min_": True}
OTHER_CLAMPS = {"clamp_max", "clamp_max_"}  # an upper bound only: never a ReLU
MAXIMA = {"maximum", "max", "fmax"}  # elementwise maximum of two tensors: a ReLU when one of them is zero
MINIMA = {"minimum", "min", "fmin"}  # elementwise minimum of two tensors: never a ReLU
ZERO_FACTORIES = {torch.zeros_like: (), torch.zeros: (), "new_zeros": (), torch.full_like: (1, "fill_value"),
                  "new_full": (2, "fill_value")}  # function or method -> where its fill value is (none: 0)
SIZE_READS = {("call_function", getattr), ("call_function", operator.getitem), ("call_method", "size"),
              ("call_method", "dim")}  # x.device, x.shape[0], x.size(), ...: what a made zero reads of x
THRESHOLDS = {F.threshold: False, torch.threshold: False, torch.threshold_: True, F.threshold_: True}
OTHER_MODULES = (nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU,
                 nn.PReLU, nn.Mish, nn.Softplus, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Threshold, nn.RReLU, nn.GLU,
                 nn.Hardshrink, nn.Softshrink, nn.Tanhshrink, nn.LogSigmoid, nn.Softsign)
OTHER_FUNCTIONS = {F.relu6: "relu6", F.gelu: "gelu", F.silu: "silu", F.hardswish: "hardswish",
                   F.hardsigmoid: "hardsigmoid", F.leaky_relu: "leaky_relu", F.elu: "elu", F.selu: "selu",
                   F.mish: "mish", F.softplus: "softplus", F.hardtanh: "hardtanh", torch.sigmoid: "sigmoid",
                   torch.tanh: "tanh", F.sigmoid: "sigmoid", F.tanh: "tanh", F.celu: "celu", F.rrelu: "rrelu",
                   F.glu: "glu", F.hardshrink: "hardshrink", F.softshrink: "softshrink", F.tanhshrink: "tanhshrink",
                   F.logsigmoid: "logsigmoid", F.softsign: "softsign", torch.abs: "abs", torch.absolute: "abs",
                   torch.where: "where", F.elu_: "elu", F.hardtanh_: "hardtanh", F.leaky_relu_: "leaky_relu",
                   F.rrelu_: "rrelu", F.celu_: "celu", F.selu_: "selu", torch.sigmoid_: "sigmoid",
                   torch.tanh_: "tanh", torch.abs_: "abs"}
OTHER_METHODS = {"sigmoid": "sigmoid", "sigmoid_": "sigmoid", "tanh": "tanh", "tanh_": "tanh", "abs": "abs",
                 "abs_": "abs", "absolute": "abs", "absolute_": "abs"}
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


@dataclass(frozen=True)
class _Call:
    """What one graph node computes: ``kind`` "relu" (its input ``source``, ``inplace``, and ``spent``, its zero
    operand: a graph node to erase once no other node reads it, or a number), another activation's label, or ""
    for anything else."""

    kind: str
    source: Any = None
    inplace: bool = False
    spent: Any = None


_NOTHING = _Call("")


def _name(node: fx.Node) -> str:
    """The function's or method's name of a call node ("" for other nodes)."""
    if node.op == "call_method":
        return str(node.target)
    return getattr(node.target, "__name__", "") if node.op == "call_function" else ""


def _is_number(value: Any, number: float) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == number


def _is_zero(value: Any, graph_module: fx.GraphModule) -> bool:
    """Whether ``value`` is an exact zero operand: the number 0, a tensor made of zeros in the forward (one of
    ``ZERO_FACTORIES``, filled with 0), or an all-zero constant or buffer (``torch.tensor(0.)`` in a forward
    becomes such a constant), never a parameter (training moves it). A zero that broadcasts the input larger is
    caught by :func:`_classify`."""
    if _is_number(value, 0):
        return True
    if not isinstance(value, fx.Node):
        return False
    if value.op in ("call_function", "call_method") and value.target in ZERO_FACTORIES:
        fill = ZERO_FACTORIES[value.target]
        return not fill or _is_number(_argument(value, *fill), 0)
    if value.op == "get_attr":
        constant = getattr(graph_module, str(value.target), None)
        return (isinstance(constant, torch.Tensor) and not isinstance(constant, nn.Parameter)
                and constant.numel() > 0 and not constant.any())
    return False


def _argument(node: fx.Node, index: int, name: str) -> Any:
    return node.args[index] if len(node.args) > index else node.kwargs.get(name)


def _shape(value: Any) -> tuple[int, ...] | None:
    meta = value.meta.get("tensor_meta") if isinstance(value, fx.Node) else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _classify(node: fx.Node, graph_module: fx.GraphModule, modules: dict[str, nn.Module]) -> _Call:
    """A ReLU (in any of the forms the module docstring lists, keeping its input's shape), another activation, or
    nothing. Shapes are read from the probe pass (``tensor_meta``)."""
    call = _classify_call(node, graph_module, modules)
    if call.kind == "relu" and _shape(node) != _shape(call.source):  # a zero that broadcast the input larger
        return _Call("maximum")
    return call


def _classify_call(node: fx.Node, graph_module: fx.GraphModule, modules: dict[str, nn.Module]) -> _Call:
    if node.op == "call_module":
        module = modules[str(node.target)]
        if type(module) is nn.ReLU or (type(module) is nn.Threshold and module.threshold == 0 and module.value == 0):
            return _Call("relu", node.args[0], module.inplace)
        return _Call(type(module).__name__) if isinstance(module, OTHER_MODULES) else _NOTHING
    if node.op not in ("call_function", "call_method"):
        return _NOTHING
    name, method = _name(node), node.op == "call_method"
    relus = RELU_METHODS if method else RELU_FUNCTIONS
    if node.target in relus:
        return _Call("relu", node.args[0], relus[node.target] or bool(node.kwargs.get("inplace", False)))
    if name in CLAMPS and (method or getattr(torch, name, None) is node.target):
        low, high = _argument(node, 1, "min"), (None if name.startswith("clamp_min") else _argument(node, 2, "max"))
        if high is None and _is_zero(low, graph_module):
            return _Call("relu", node.args[0], CLAMPS[name], spent=low)
        return _Call("clamp")
    if name in OTHER_CLAMPS and (method or getattr(torch, name, None) is node.target):
        return _Call("clamp")
    if name in MAXIMA | MINIMA and (method or getattr(torch, name, None) is node.target):
        operands = list(node.args)  # (input, other) for the function and the method alike
        if len(operands) != 2 or not all(isinstance(a, fx.Node) for a in operands) or node.kwargs:
            return _NOTHING  # a reduction (torch.max(x), x.min(dim)), not an elementwise extremum of two tensors
        if name in MINIMA:
            return _Call("minimum")
        for kept, other in (operands, operands[::-1]):
            if _is_zero(other, graph_module) and not _is_zero(kept, graph_module):
                return _Call("relu", kept, spent=other)
        return _Call("maximum")
    if not method and node.target in THRESHOLDS:
        level, value = _argument(node, 1, "threshold"), _argument(node, 2, "value")
        if _is_number(level, 0) and _is_number(value, 0):
            return _Call("relu", node.args[0], THRESHOLDS[node.target] or bool(_argument(node, 3, "inplace")))
        return _Call("threshold")
    if method:
        return _Call(OTHER_METHODS[name]) if name in OTHER_METHODS else _NOTHING
    return _Call(OTHER_FUNCTIONS[node.target]) if node.target in OTHER_FUNCTIONS else _NOTHING


def _is_add(node: Any) -> bool:
    return isinstance(node, fx.Node) and ((node.op == "call_function" and node.target in ADDS)
                                          or (node.op == "call_method" and node.target in ("add", "add_")))


def _erase_spent(graph: fx.Graph, spent: Any) -> None:
    """Erase a ReLU's zero operand that no other node reads, and the size reads (``x.device``, ``x.shape``)
    only it used."""
    if not isinstance(spent, fx.Node) or spent.users:
        return
    ingredients = [node for node in spent.all_input_nodes if (node.op, node.target) in SIZE_READS]
    graph.erase_node(spent)
    for node in ingredients:
        _erase_spent(graph, node)


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
        call = _classify(node, graph_module, modules)
        if call.kind == "relu":
            relus.append((node, call))
        elif call.kind:
            others[call.kind] += 1
    taken = set(modules)
    sites: dict[str, tuple[int, ...]] = {}
    replaced: dict[fx.Node, fx.Node] = {}  # ReLU node -> its site, for a ReLU whose input is a ReLU
    for node, call in relus:
        path = _module_path(node)
        base = path if node.op == "call_module" else ".".join(p for p in (path, node.name) if p)
        name, suffix = base, 1
        while name in sites or (name in taken and name != path):
            name, suffix = f"{base}_{suffix}", suffix + 1
        shape = tuple(int(s) for s in node.meta["tensor_meta"].shape[1:])
        stage = int(match.group(1)) if (match := _LAYER.search(path)) else 0
        source, inplace = replaced.get(call.source, call.source), call.inplace
        role = "output" if _is_add(source) else "inner"
        graph_module.add_submodule(name, LinearizableReLU(shape, stage=stage, role=role))
        sites[name] = shape
        with graph_module.graph.inserting_after(node):
            site_node = graph_module.graph.call_module(name, (source,))
        node.replace_all_uses_with(site_node)
        replaced[node] = site_node
        if inplace and isinstance(source, fx.Node):  # later readers of the input saw the ReLU's result
            source.replace_all_uses_with(site_node, delete_user_cb=lambda user: user is not site_node
                                         and order.get(user, -1) > order[node])
        graph_module.graph.erase_node(node)
        _erase_spent(graph_module.graph, call.spent)
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
    check_factory(factory, ModelError)
    if not isinstance(kwargs, dict):
        raise ModelError(f"model-code kwargs must be a JSON object, got {brief(kwargs)}")
    try:
        json.dumps(kwargs, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ModelError(f"model-code kwargs must be JSON values (numbers, strings, lists), got "
                         f"{brief(kwargs)}") from error
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
