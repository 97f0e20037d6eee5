"""Two-hidden-layer perceptron ("2NN") of FedAvg.

McMahan et al., "Communication-Efficient Learning of Deep Networks from Decentralized Data",
AISTATS 2017, arXiv:1602.05629: two fully connected layers of 200 units with ReLU.
"""

from __future__ import annotations

import math

from torch import nn

HIDDEN = 200


def build_mlp(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The 2NN on flattened float features.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one sample; any shape, flattened to ``d = prod(input_shape)`` features.
    num_classes : int
        Number of output logits.

    Returns
    -------
    torch.nn.Module
        Maps ``(N, *input_shape)`` float tensors to logits ``(N, num_classes)``.
    """
    features = math.prod(input_shape)
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(features, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, HIDDEN),
        nn.ReLU(),
        nn.Linear(HIDDEN, num_classes),
    )
