"""QSGD: stochastic quantisation of each coordinate to one of ``levels`` magnitudes.

Alistarh, Grubic, Li, Tomioka & Vojnovic, "QSGD: Communication-Efficient SGD via Gradient
Quantization and Encoding" (NeurIPS 2017, arXiv 1610.02132): ``Q(x)_i = ||x||_2 sign(x_i)
l_i / s`` with ``l_i`` the stochastic rounding of ``s |x_i| / ||x||_2``, unbiased. Per tensor:
its norm (float32), the signs packed eight to a byte and the levels in the smallest unsigned
type (one byte for s < 256); the paper's Elias coding of the levels is not applied. The
rounding draws from the sender's private stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stamen.algorithms.compression.base import (
    COMPRESSORS,
    Compressor,
    Draws,
    MalformedPayload,
    Parts,
    PartsLayout,
    index_dtype,
    numel,
    pack_bits,
    require_integer,
    unpack_bits,
)


@COMPRESSORS.register("qsgd")
@dataclass(frozen=True)
class QSGD(Compressor):
    levels: int

    def check(self) -> None:
        require_integer("qsgd", "levels", self.levels, 1)

    def parts_layout(self, shape: tuple[int, ...]) -> PartsLayout:
        size = numel(shape)
        return {
            "norm": ((1,), torch.float32),
            "signs": ((-(-size // 8),), torch.uint8),
            "levels": ((size,), index_dtype(self.levels + 1)),
        }

    def compress(self, x: Tensor, draws: Draws, state: Parts) -> tuple[Parts, Parts]:
        flat = x.reshape(-1).float()
        norm = flat.norm().reshape(1)
        scaled = flat.abs() / norm.clamp_min(torch.finfo(torch.float32).tiny) * self.levels
        noise = torch.rand(flat.numel(), generator=draws.private)
        levels = (scaled + noise).floor().clamp_(0, self.levels)
        parts = {
            "norm": norm,
            "signs": pack_bits(flat >= 0),
            "levels": levels.to(index_dtype(self.levels + 1)),
        }
        return parts, state

    def decompress(self, parts: Parts, shape: tuple[int, ...], draws: Draws) -> Tensor:
        if float(parts["norm"]) < 0:
            raise MalformedPayload(f"qsgd norm {float(parts['norm'])} is negative")
        levels = parts["levels"].to(torch.float32)
        if len(levels) and float(levels.max()) > self.levels:
            raise MalformedPayload(f"qsgd level {float(levels.max()):.0f} over {self.levels}")
        signs = 2 * unpack_bits(parts["signs"], numel(shape)).float() - 1
        return (parts["norm"] * signs * levels / self.levels).view(shape)
