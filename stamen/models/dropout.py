"""Dropout layers whose masks are drawn the same way on every device.

``bernoulli(1 - p) / (1 - p)`` from torch's generator, one value per unit (``Dropout``) or per
channel of each sample (``Dropout2d``): what ``F.dropout`` does on the CPU, to the bit. On CUDA
``F.dropout`` runs a fused kernel with its own random stream instead, which a batched client
(``BatchedSGD``, drawing each client's masks from a generator seeded like its one-by-one run)
could not reproduce; with these layers both paths draw the same masks on the GPU as well.
"""

from __future__ import annotations

import torch
from torch import nn


def _scaled_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    if p == 1.0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    noise = torch.empty(shape, dtype=like.dtype, device=like.device)
    return noise.bernoulli_(1 - p).div_(1 - p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the CPU's mask draw on every device."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        return x * _scaled_mask(tuple(x.shape), self.p, x)


class Dropout2d(nn.Dropout2d):
    """``nn.Dropout2d`` (whole channels of a batched ``(N, C, H, W)`` input) with the CPU's
    mask draw on every device."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0], x.shape[1], *[1] * (x.dim() - 2))
        return x * _scaled_mask(shape, self.p, x)
