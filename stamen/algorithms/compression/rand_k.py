"""Random-k sparsification: k coordinates drawn uniformly without replacement.

Stich, Cordonnier & Jaggi (NeurIPS 2018, arXiv 1809.07599). The coordinates come from the
round's shared stream (the same on every client and the server for a tensor), so only the
values travel and the server sums sparse updates directly, as Eghlidi & Jaggi (2020) do for
random blocks; ``unbiased`` rescales the values by d/k.
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


@COMPRESSORS.register("rand-k")
@dataclass(frozen=True)
class RandK(SharedSparsifier):
    NAME = "rand-k"

    def indices(self, size: int, generator: torch.Generator) -> Tensor:
        return torch.randperm(size, generator=generator)[: kept(self.ratio, size)]

    def compress(self, x: Tensor, draws: Draws, state: Parts) -> tuple[Parts, Parts]:
        flat = x.reshape(-1)
        return {"values": flat[self.indices(flat.numel(), draws.shared)].float()}, state

    def decompress(self, parts: Parts, shape: tuple[int, ...], draws: Draws) -> Tensor:
        out = torch.zeros(numel(shape))
        out[self.indices(out.numel(), draws.shared)] = parts["values"]
        return out.view(shape)
