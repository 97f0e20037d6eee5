"""CIFAR-style residual networks (ResNet-8, ResNet-20).

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016,
arXiv:1512.03385, section 4.2: a 3x3 convolution with 16 filters, then three stages of ``n``
basic blocks with 16, 32 and 64 filters (stride 2 at the start of stages 2 and 3), global
average pooling and a fully connected layer; depth ``6n + 2``. Shortcuts use option B of the
paper: identity, except a strided 1x1 convolution with BatchNorm where the shape changes, as in
the FedDF code (Lin et al., arXiv:2006.07242). ResNet-20 has 272,474 parameters for 10 classes
(option A, parameter-free zero padding, would give 269,722); ResNet-8 has 78,042.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from stamen.errors import ConfigError

CIFAR_SHAPE = (3, 32, 32)
STAGE_WIDTHS = (16, 32, 64)


def projection_shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Option-B shortcut: strided 1x1 convolution and BatchNorm, for blocks that change shape.

    Maps ``(N, in_channels, H, W)`` to ``(N, out_channels, ceil(H / stride), ceil(W / stride))``.
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with a ReLU between and after the residual sum."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = (
            projection_shortcut(in_channels, out_channels, stride)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet of depth ``6 * blocks_per_stage + 2`` for 3x32x32 images."""

    def __init__(self, blocks_per_stage: int, num_classes: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, STAGE_WIDTHS[0], 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(STAGE_WIDTHS[0])
        blocks: list[nn.Module] = []
        in_channels = STAGE_WIDTHS[0]
        for stage, width in enumerate(STAGE_WIDTHS):
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(BasicBlock(in_channels, width, stride))
                in_channels = width
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(STAGE_WIDTHS[-1], num_classes)
        # He initialisation (arXiv:1502.01852) as in the paper; BatchNorm keeps weight 1, bias 0.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        """Logits of shape ``(N, num_classes)`` for images ``x`` of shape ``(N, 3, 32, 32)``."""
        out = self.blocks(F.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(out, 1), 1))


def _build(
    name: str, blocks_per_stage: int, input_shape: tuple[int, ...], num_classes: int
) -> CifarResNet:
    if tuple(input_shape) != CIFAR_SHAPE:
        raise ConfigError(
            f"model {name!r} needs 3-channel 32x32 images, input_shape {CIFAR_SHAPE}; "
            f"got {tuple(input_shape)}"
        )
    return CifarResNet(blocks_per_stage, num_classes)


def build_resnet8(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """ResNet-8 (one block per stage) for ``input_shape == (3, 32, 32)``."""
    return _build("resnet8", 1, input_shape, num_classes)


def build_resnet20(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """ResNet-20 (three blocks per stage) for ``input_shape == (3, 32, 32)``."""
    return _build("resnet20", 3, input_shape, num_classes)
