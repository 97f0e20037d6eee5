"""Random-block sparsification: one contiguous block of each tensor, the same on every client.

Eghlidi & Jaggi, "Sparse Communication for Training Deep Networks" (arXiv 2009.09271): the
block's offset is drawn from the round's shared stream and wraps at the tensor's end, so only
the values travel (no indices), the sparse updates sum directly, and reading a block is one
contiguous copy. Biased per round, unbiased over rounds; ``ef`` or ``unbiased`` (d/k) wrap it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stamen.algorithms.compression.base import (
    COMPRESSORS,
    Draws,
    Parts,
    SharedSparsifier,
    kept,
    numel,
)


@COMPRESSORS.register("random-block")
@dataclass(frozen=True)
class RandomBlock(SharedSparsifier):
    NAME = "random-block"

    def block(self, size: int, generator: torch.Generator) -> tuple[slice, slice]:
        """The block as at most two slices: from its offset, then wrapped from 0."""
        k = kept(self.ratio, size)
        offset = int(torch.randint(size, (1,), generator=generator)) if size else 0
        end = offset + k
        return slice(offset, min(end, size)), slice(0, max(end - size, 0))

    def compress(self, x: Tensor, draws: Draws, state: Parts) -> tuple[Parts, Parts]:
        flat = x.reshape(-1)
        head, tail = self.block(flat.numel(), draws.shared)
        return {"values": torch.cat([flat[head], flat[tail]]).float()}, state

    def decompress(self, parts: Parts, shape: tuple[int, ...], draws: Draws) -> Tensor:
        out = torch.zeros(numel(shape))
        head, tail = self.block(out.numel(), draws.shared)
        values = parts["values"]
        split = head.stop - head.start
        out[head], out[tail] = values[:split], values[split:]
        return out.view(shape)
