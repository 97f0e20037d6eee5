"""Top-k sparsification: the k coordinates of largest magnitude, sent as values and indices.

Stich, Cordonnier & Jaggi, "Sparsified SGD with Memory" (NeurIPS 2018, arXiv 1809.07599):
biased, so used with error feedback (``"ef | top-k(ratio=0.01)"``). Indices travel in the
smallest unsigned type that holds the tensor's size.
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
    kept,
    numel,
    require_ratio,
)


@COMPRESSORS.register("top-k")
@dataclass(frozen=True)
class TopK(Compressor):
    ratio: float

    def check(self) -> None:
        require_ratio("top-k", self.ratio)

    def parts_layout(self, shape: tuple[int, ...]) -> PartsLayout:
        size = numel(shape)
        k = kept(self.ratio, size)
        return {"values": ((k,), torch.float32), "indices": ((k,), index_dtype(size))}

    def compress(self, x: Tensor, draws: Draws, state: Parts) -> tuple[Parts, Parts]:
        flat = x.reshape(-1)
        indices = flat.abs().topk(kept(self.ratio, flat.numel()), sorted=False).indices
        parts = {"values": flat[indices].float(), "indices": indices.to(index_dtype(flat.numel()))}
        return parts, state

    def decompress(self, parts: Parts, shape: tuple[int, ...], draws: Draws) -> Tensor:
        size = numel(shape)
        indices = parts["indices"].long()
        if len(indices) and int(indices.max()) >= size:
            raise MalformedPayload(f"top-k index {int(indices.max())} out of range {size}")
        if len(indices.unique()) != len(indices):
            raise MalformedPayload("top-k indices repeat")
        out = torch.zeros(size)
        out[indices] = parts["values"]
        return out.view(shape)
