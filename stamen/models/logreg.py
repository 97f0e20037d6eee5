"""Multinomial logistic regression: one linear layer on the flattened input.

The convex model of SCAFFOLD's EMNIST experiments (Karimireddy et al., arXiv 1910.06378),
and a second, cheap architecture for heterogeneous FedDF runs beside ``mlp``.
"""

from __future__ import annotations

import math

from torch import nn


def build_logreg(input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """Maps ``(N, *input_shape)`` float tensors to logits ``(N, num_classes)``."""
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes))
