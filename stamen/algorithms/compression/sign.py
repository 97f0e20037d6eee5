"""Scaled sign compression: one bit per coordinate and one scale per tensor.

Karimireddy, Rebjock, Stich & Jaggi, "Error Feedback Fixes SignSGD and other Gradient
Compression Schemes" (ICML 2019, arXiv 1901.09847): ``C(x) = (||x||_1 / d) sign(x)``, with
error feedback (``"ef | sign"``). The signs travel packed eight to a byte; zero counts as +.
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
    numel,
    pack_bits,
    unpack_bits,
)


@COMPRESSORS.register("sign")
@dataclass(frozen=True)
class ScaledSign(Compressor):
    def parts_layout(self, shape: tuple[int, ...]) -> PartsLayout:
        return {
            "signs": ((-(-numel(shape) // 8),), torch.uint8),
            "scale": ((1,), torch.float32),
        }

    def compress(self, x: Tensor, draws: Draws, state: Parts) -> tuple[Parts, Parts]:
        flat = x.reshape(-1).float()
        scale = (flat.abs().sum() / max(flat.numel(), 1)).reshape(1)
        return {"signs": pack_bits(flat >= 0), "scale": scale}, state

    def decompress(self, parts: Parts, shape: tuple[int, ...], draws: Draws) -> Tensor:
        if float(parts["scale"]) < 0:
            raise MalformedPayload(f"sign scale {float(parts['scale'])} is negative")
        positive = unpack_bits(parts["signs"], numel(shape))
        return (parts["scale"] * (2 * positive.float() - 1)).view(shape)
