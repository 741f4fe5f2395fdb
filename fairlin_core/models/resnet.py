"""CIFAR-style ResNet18/34 as in the SNL reference code, with linearizable activations.

3x3 stride-1 stem conv + BN with no stem ReLU; BasicBlocks with two activation sites (after bn1,
role ``inner``, and after the residual add, role ``output``); 1x1 conv + BN shortcut when the shape
changes; global average pooling (so 8x8 inputs work); linear head. Widths w, 2w, 4w, 8w
(w = ``width``, 64 by default). ``stem_stride=2`` is DeepReDuce's rho = 0.5 variant: the same weights
on a 4x smaller activation map.

``stem="imagenet"`` is torchvision's ImageNet stem instead: 7x7 stride-2 conv + BN, a stem activation
site (stage 0, role ``stem``, which counts), 3x3 stride-2 max-pool. With it the model is exactly
``torchvision.models.resnet18/34`` (head ``fc`` there, ``linear`` here; ``downsample`` there,
``shortcut`` here).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .activation import LinearizableReLU


STEMS = ("cifar", "imagenet")


def _conv_out(size: int, stride: int) -> int:
    """Spatial size after a 3x3 conv with padding 1 (or a 1x1 conv, padding 0) and ``stride``."""
    return math.ceil(size / stride)


class BasicBlock(nn.Module):
    """Two 3x3 convs; activation sites after bn1 and after the residual add.

    in_hw: (H, W) of the block's input; the sites get shape (planes, H/stride, W/stride).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int, in_hw: tuple[int, int], stage: int) -> None:
        super().__init__()
        out_hw = (_conv_out(in_hw[0], stride), _conv_out(in_hw[1], stride))
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = LinearizableReLU((planes, *out_hw), stage=stage, role="inner")
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )
        self.relu2 = LinearizableReLU((planes, *out_hw), stage=stage, role="output")
        self.out_hw = out_hw

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(nn.Module):
    """CIFAR-style ResNet.

    x: (N, in_channels, H, W) -> logits (N, num_classes).
    """

    def __init__(self, blocks_per_stage: list[int], num_classes: int, input_shape: tuple[int, int, int],
                 width: int = 64, stem_stride: int = 1, stem: str = "cifar") -> None:
        super().__init__()
        in_channels, height, width_px = input_shape
        self.stem = stem
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=7, stride=2, padding=3, bias=False)
            hw = (_conv_out(height, 2), _conv_out(width_px, 2))
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = LinearizableReLU((width, *hw), stage=0, role="stem")
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            hw = (_conv_out(hw[0], 2), _conv_out(hw[1], 2))
        else:
            self.conv1 = nn.Conv2d(in_channels, width, kernel_size=3, stride=stem_stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            hw = (_conv_out(height, stem_stride), _conv_out(width_px, stem_stride))
        in_planes = width
        stages = []
        for stage_index, num_blocks in enumerate(blocks_per_stage):
            planes = width * 2 ** stage_index
            blocks = []
            for block_index in range(num_blocks):
                stride = 2 if stage_index > 0 and block_index == 0 else 1
                block = BasicBlock(in_planes, planes, stride, hw, stage=stage_index + 1)
                blocks.append(block)
                in_planes, hw = planes, block.out_hw
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn1(self.conv1(x))
        if self.stem == "imagenet":
            out = self.maxpool(self.relu(out))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return self.linear(torch.flatten(self.avgpool(out), 1))


def resnet18(num_classes: int, input_shape: tuple[int, int, int], width: int = 64, stem_stride: int = 1,
             stem: str = "cifar") -> ResNet:
    return ResNet([2, 2, 2, 2], num_classes, input_shape, width=width, stem_stride=stem_stride, stem=stem)


def resnet34(num_classes: int, input_shape: tuple[int, int, int], width: int = 64, stem_stride: int = 1,
             stem: str = "cifar") -> ResNet:
    return ResNet([3, 4, 6, 3], num_classes, input_shape, width=width, stem_stride=stem_stride, stem=stem)
