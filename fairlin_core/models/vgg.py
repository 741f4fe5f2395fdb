"""CIFAR-style VGG19 with batch norm and linearizable activations.

Each 3x3 conv is followed by BN and one activation site; max-pools halve the map (and are skipped
once the map is 1x1, so 8x8 inputs work); global average pooling and a linear head.
"""

from __future__ import annotations

import torch
from torch import nn

from .activation import LinearizableReLU

VGG19_CONFIG = [1, 1, "M", 2, 2, "M", 4, 4, 4, 4, "M", 8, 8, 8, 8, "M", 8, 8, 8, 8, "M"]


class VGG(nn.Module):
    """x: (N, C, H, W) -> logits (N, num_classes). Channel entries of ``config`` are multiples of ``width``."""

    def __init__(self, config: list, num_classes: int, input_shape: tuple[int, int, int], width: int = 64) -> None:
        super().__init__()
        in_channels, height, width_px = input_shape
        layers: list[nn.Module] = []
        stage = 1
        for entry in config:
            if entry == "M":
                if height > 1 or width_px > 1:
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True))
                    height, width_px = (height + 1) // 2, (width_px + 1) // 2
                stage += 1
                continue
            channels = entry * width
            layers += [nn.Conv2d(in_channels, channels, kernel_size=3, padding=1, bias=False),
                       nn.BatchNorm2d(channels),
                       LinearizableReLU((channels, height, width_px), stage=stage, role="conv")]
            in_channels = channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg19_bn(num_classes: int, input_shape: tuple[int, int, int], width: int = 64) -> VGG:
    return VGG(VGG19_CONFIG, num_classes, input_shape, width=width)
