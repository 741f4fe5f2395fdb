"""Fully connected ReLU network with linearizable activations (one site per hidden layer)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .activation import LinearizableReLU


class MLP(nn.Module):
    """x: (N, *input_shape), flattened -> logits (N, num_classes); ``depth`` hidden layers of ``width`` units."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], depth: int = 2, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        in_features = math.prod(input_shape)
        for layer_index in range(depth):
            layers += [nn.Linear(in_features, width), LinearizableReLU((width,), stage=layer_index + 1, role="hidden")]
            in_features = width
        layers.append(nn.Linear(in_features, num_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def mlp(num_classes: int, input_shape: tuple[int, ...], depth: int = 2, width: int = 16) -> MLP:
    return MLP(num_classes, input_shape, depth=depth, width=width)
