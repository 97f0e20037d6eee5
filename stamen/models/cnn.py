"""The two-convolution MNIST CNN of the bucketing paper.

Karimireddy, He, Jaggi, "Byzantine-Robust Learning on Heterogeneous Datasets via Bucketing",
ICLR 2022, arXiv:2006.09365. Layers as in its repository (the PyTorch MNIST example):
conv(1,32,3) -> ReLU -> conv(32,64,3) -> max-pool 2 -> Dropout2d(0.25) -> fc(9216,128) -> ReLU
-> dropout(0.5) -> fc(128,10). There is deliberately no ReLU after the second convolution.
On 1x28x28 images with 10 classes it has 1,199,882 parameters.

The first fully connected layer is sized from the input, so the same network also takes other
single- or multi-channel images (e.g. 1x8x8 digits); on MNIST it is the paper's model exactly.
"""

from __future__ import annotations

from torch import nn

from stamen.errors import ConfigError
from stamen.models.dropout import Dropout, Dropout2d

MIN_SIDE = 6  # two 3x3 valid convolutions (-4) then a 2x2 pool need at least 2 pixels left


def build_cnn(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The bucketing CNN for images of shape ``(C, H, W)``.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)``, both sides at least 6; ``(1, 28, 28)`` for MNIST.
    num_classes : int
        Number of output logits.

    Returns
    -------
    torch.nn.Module
        Maps ``(N, C, H, W)`` float tensors to logits ``(N, num_classes)``.
    """
    if len(input_shape) != 3 or min(input_shape[1:]) < MIN_SIDE:
        raise ConfigError(
            f"model 'cnn' needs images of shape (channels, height, width) with sides >= "
            f"{MIN_SIDE}, e.g. (1, 28, 28); got input_shape {tuple(input_shape)}"
        )
    channels, height, width = input_shape
    flat = 64 * ((height - 4) // 2) * ((width - 4) // 2)
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.MaxPool2d(2),
        Dropout2d(0.25),
        nn.Flatten(),
        nn.Linear(flat, 128),
        nn.ReLU(),
        Dropout(0.5),
        nn.Linear(128, num_classes),
    )
