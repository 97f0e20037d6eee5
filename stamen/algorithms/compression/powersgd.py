"""PowerSGD's low-rank approximation of each matrix, one power-iteration step, warm-started.

Vogels, Karimireddy & Jaggi, "PowerSGD: Practical Low-Rank Gradient Compression for
Distributed Optimization" (NeurIPS 2019, arXiv 1905.13553): a tensor of shape
(m, ...) is the matrix M (m, n) with n the product of the other sizes; ``P = M Q``,
``P = orthonormal(P)``, ``Q = M^T P`` (``iters`` times), and ``P Q^T`` stands for ``M``.
``Q`` starts from the shared stream's normal draws and then from the previous round's ``Q``
(warm start, kept in the sender's state). A vector, or a matrix whose factors would not be
smaller than itself, travels dense, as in the paper. This is the one-phase form: the sender
computes both factors and sends them; use it with ``ef``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stamen.algorithms.compression.base import (
    COMPRESSORS,
    Compressor,
    Draws,
    Parts,
    PartsLayout,
    numel,
    require_integer,
)


@COMPRESSORS.register("powersgd")
@dataclass(frozen=True)
class PowerSGD(Compressor):
    rank: int
    iters: int = 1

    def check(self) -> None:
        require_integer("powersgd", "rank", self.rank, 1)
        require_integer("powersgd", "iters", self.iters, 1)

    def factors(self, shape: tuple[int, ...]) -> tuple[int, int, int] | None:
        """(m, n, r) of a tensor approximated at rank r, or None when it travels dense."""
        if len(shape) < 2:
            return None
        m, n = shape[0], numel(shape[1:])
        rank = min(self.rank, m, n)
        return (m, n, rank) if rank * (m + n) < m * n else None

    def parts_layout(self, shape: tuple[int, ...]) -> PartsLayout:
        factors = self.factors(shape)
        if factors is None:
            return {"values": ((numel(shape),), torch.float32)}
        m, n, rank = factors
        return {"p": ((m, rank), torch.float32), "q": ((n, rank), torch.float32)}

    def compress(self, x: Tensor, draws: Draws, state: Parts) -> tuple[Parts, Parts]:
        factors = self.factors(tuple(x.shape))
        if factors is None:
            return {"values": x.reshape(-1).float()}, {}
        m, n, rank = factors
        matrix = x.reshape(m, n).float()
        q = state.get("q")
        if q is None or tuple(q.shape) != (n, rank):
            q = torch.randn(n, rank, generator=draws.shared)
        for _ in range(self.iters):
            p = orthonormal(matrix @ q)
            q = matrix.T @ p
        return {"p": p, "q": q}, {"q": q}

    def decompress(self, parts: Parts, shape: tuple[int, ...], draws: Draws) -> Tensor:
        if "values" in parts:
            return parts["values"].view(shape)
        return (parts["p"] @ parts["q"].T).view(shape)


def orthonormal(matrix: Tensor) -> Tensor:
    """Orthonormal columns spanning ``matrix``'s (reduced QR)."""
    return torch.linalg.qr(matrix, mode="reduced").Q
