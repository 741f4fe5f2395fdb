"""WideResNet (Zagoruyko & Komodakis) with pre-activation blocks and linearizable activations.

WRN-22-8: depth 22 (3 blocks per group), widen factor 8, widths 16k, 32k, 64k. Each block has two
activation sites (before conv1 and before conv2); one final site before pooling.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .activation import LinearizableReLU


class WideBlock(nn.Module):
    """Pre-activation block: BN-act-conv3x3(stride)-BN-act-conv3x3, identity or 1x1 shortcut.

    in_hw: (H, W) of the input; the first site has shape (in_planes, H, W), the second
    (planes, H/stride, W/stride).
    """

    def __init__(self, in_planes: int, planes: int, stride: int, in_hw: tuple[int, int], stage: int) -> None:
        super().__init__()
        out_hw = (math.ceil(in_hw[0] / stride), math.ceil(in_hw[1] / stride))
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.relu1 = LinearizableReLU((in_planes, *in_hw), stage=stage, role="pre1")
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = LinearizableReLU((planes, *out_hw), stage=stage, role="pre2")
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False))
        self.out_hw = out_hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv1(self.relu1(self.bn1(x)))
        out = self.conv2(self.relu2(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(nn.Module):
    """x: (N, C, H, W) -> logits (N, num_classes)."""

    def __init__(self, depth: int, widen: int, num_classes: int, input_shape: tuple[int, int, int]) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        blocks = (depth - 4) // 6
        in_channels, height, width_px = input_shape
        self.conv1 = nn.Conv2d(in_channels, 16, kernel_size=3, padding=1, bias=False)
        hw = (height, width_px)
        in_planes = 16
        groups = []
        for group_index, planes in enumerate((16 * widen, 32 * widen, 64 * widen)):
            layers = []
            for block_index in range(blocks):
                stride = 2 if group_index > 0 and block_index == 0 else 1
                block = WideBlock(in_planes, planes, stride, hw, stage=group_index + 1)
                layers.append(block)
                in_planes, hw = planes, block.out_hw
            groups.append(nn.Sequential(*layers))
        self.group1, self.group2, self.group3 = groups
        self.bn = nn.BatchNorm2d(in_planes)
        self.relu = LinearizableReLU((in_planes, *hw), stage=3, role="final")
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.group3(self.group2(self.group1(self.conv1(x))))
        out = self.relu(self.bn(out))
        return self.linear(torch.flatten(self.avgpool(out), 1))


def wrn22_8(num_classes: int, input_shape: tuple[int, int, int], width: int = 8) -> WideResNet:
    """WRN-22-k with k = ``width`` (8 by default)."""
    return WideResNet(22, width, num_classes, input_shape)
