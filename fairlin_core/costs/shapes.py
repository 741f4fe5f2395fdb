"""What a private-inference protocol has to evaluate in one model: its linear layers (conv, fully connected)
with their shapes and multiply-accumulates, and its ReLU sites with their masks, in forward order.

One forward pass of a single zero input of the model's input shape records, per layer, the number of
input and output elements per sample and the MACs (conv: output elements x in_channels/groups x kh x kw;
fully connected: in_features x out_features). Batch norm is folded into the preceding conv (as every
profile's protocol does) and pooling, flattening and residual additions are local on secret shares, so
neither appears. Max pools are not costed (none of the shipped profiles measures them).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import pandas as pd
import torch
from torch import nn

from ..models import LinearizableReLU, ModelSpec, build_model

LAYER_COLUMNS = ["layer", "kind", "input_elements", "output_elements", "macs", "relu_sites", "relus"]


def layer_table(model: nn.Module, input_shape: Sequence[int]) -> pd.DataFrame:
    """One row per linear layer and activation site of ``model`` in forward order.

    Columns: layer (module name), kind ("conv", "fc" or "relu"), input_elements and output_elements (per
    sample), macs (linear layers; 0 for sites), relu_sites (mask entries of a site; 0 for linear layers),
    relus (mask entries switched on, i.e. the site's ReLU count; 0 for linear layers).
    """
    rows: list[dict] = []
    names = {module: name for name, module in model.named_modules()}

    def record(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        x = inputs[0]
        row = {"layer": names[module], "input_elements": x[0].numel(), "output_elements": output[0].numel(),
               "macs": 0, "relu_sites": 0, "relus": 0}
        if isinstance(module, nn.Conv2d):
            kh, kw = module.kernel_size
            row.update(kind="conv", macs=output[0].numel() * (module.in_channels // module.groups) * kh * kw)
        elif isinstance(module, nn.Linear):
            row.update(kind="fc", macs=module.in_features * module.out_features)
        else:
            row.update(kind="relu", relu_sites=module.alpha.numel(), relus=module.relu_count())
        rows.append(row)

    hooks = [m.register_forward_hook(record) for m in model.modules()
             if isinstance(m, (nn.Conv2d, nn.Linear, LinearizableReLU))]
    parameter = next(model.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=device))
    finally:
        model.train(training)
        for hook in hooks:
            hook.remove()
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


@functools.lru_cache(maxsize=32)
def _spec_table(name: str, num_classes: int, input_shape: tuple[int, ...], options: tuple) -> pd.DataFrame:
    spec = ModelSpec(name, num_classes, input_shape, dict(options))
    return layer_table(build_model(spec), input_shape)


def spec_layer_table(spec: ModelSpec, **options: int) -> pd.DataFrame:
    """:func:`layer_table` of a freshly built model of ``spec`` (every ReLU on), ``options`` overriding the
    spec's (e.g. DeepReDuce's ``stem_stride=2``); cached per architecture, so do not modify the result."""
    merged = {**spec.options, **options}
    return _spec_table(spec.name, spec.num_classes, tuple(spec.input_shape), tuple(sorted(merged.items())))
