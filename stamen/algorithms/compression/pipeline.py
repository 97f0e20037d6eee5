"""A compression spec: optional wrappers, then one compressor, applied tensor by tensor to a
flat update, e.g. ``"ef | random-block(ratio=0.01)"``.

Wrappers:
- ``ef``, error feedback (Stich, Cordonnier & Jaggi, NeurIPS 2018; Karimireddy et al., ICML
  2019): the sender compresses ``p = update + e`` and keeps ``e <- p - decompress(C(p))``, so
  what it sent plus its memory always sums to what it had to send;
- ``unbiased``: a random sparsifier's values rescaled by the inverse of the probability that a
  coordinate is kept (d/k), so that the decompressed update is unbiased.

The update is split into its tensors (names and shapes in order, as the model's floating-point
arrays are packed); the payload holds each tensor's parts under ``"<tensor>/<part>"`` and the
sender's state its memory (``"memory"``) and each tensor's state (``"<tensor>/<name>"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stamen.algorithms.compression.base import (
    COMPRESSORS,
    Compressor,
    MalformedPayload,
    Parts,
    PartsLayout,
    RoundDraws,
    Tensors,
    split,
)
from stamen.errors import ConfigError
from stamen.registry import parse_spec

WRAPPERS = ("ef", "unbiased")
NONE = "none"
MEMORY = "memory"


@dataclass(frozen=True)
class Compression:
    """One compressor with its wrappers."""

    compressor: Compressor
    error_feedback: bool = False
    unbiased: bool = False

    def payload_layout(self, tensors: Tensors) -> PartsLayout:
        """Every part's shape and dtype, under ``"<tensor>/<part>"``."""
        return {
            f"{name}/{part}": layout
            for name, shape in tensors
            for part, layout in self.compressor.parts_layout(shape).items()
        }

    def compress(
        self, update: Tensor, tensors: Tensors, draws: RoundDraws, state: Parts
    ) -> tuple[Parts, Parts]:
        """The payload for ``update`` (d,) and the sender's new state."""
        update = update.detach().float().cpu()
        memory = state.get(MEMORY)
        target = update + memory if self.error_feedback and memory is not None else update
        payload: Parts = {}
        new_state: Parts = {}
        for index, (name, shape, x) in enumerate(split(target, tensors)):
            own = _prefixed(state, name)
            parts, own = self.compressor.compress(x, draws.of(index), own)
            if self.unbiased:
                parts["values"] = parts["values"] / self.compressor.keep_probability(shape)
            payload.update({f"{name}/{part}": value for part, value in parts.items()})
            new_state.update({f"{name}/{key}": value for key, value in own.items()})
        if self.error_feedback:
            new_state[MEMORY] = target - self.decompress(payload, tensors, draws)
        return payload, new_state

    def decompress(self, payload: Parts, tensors: Tensors, draws: RoundDraws) -> Tensor:
        """The update (d,) that ``payload`` stands for; ``MalformedPayload`` for parts of
        other names, shapes or dtypes than the method sends, or values it cannot send."""
        check_payload(payload, self.payload_layout(tensors))
        pieces = []
        for index, (name, shape) in enumerate(tensors):
            parts = _prefixed(payload, name)
            pieces.append(self.compressor.decompress(parts, shape, draws.of(index)).reshape(-1))
        return torch.cat(pieces) if pieces else torch.zeros(0)


def check_payload(payload: Parts, layout: PartsLayout) -> None:
    """Refuse a payload that is not exactly ``layout``'s parts, or has non-finite values."""
    if set(payload) != set(layout):
        unexpected = sorted(set(payload) - set(layout))
        missing = sorted(set(layout) - set(payload))
        raise MalformedPayload(f"payload parts differ: missing {missing}, unexpected {unexpected}")
    for key, (shape, dtype) in layout.items():
        value = payload[key]
        if tuple(value.shape) != shape or value.dtype != dtype:
            raise MalformedPayload(
                f"{key} is {value.dtype} {tuple(value.shape)}, expected {dtype} {shape}"
            )
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise MalformedPayload(f"{key} holds non-finite values")


def parse_compression(spec: str) -> Compression | None:
    """The compression of a spec (None for ``"none"``); one-line ConfigError otherwise."""
    stages = [stage.strip() for stage in spec.split("|")]
    if stages == [NONE]:
        return None
    *wrappers, last = stages
    for wrapper in wrappers:
        if wrapper not in WRAPPERS:
            raise ConfigError(
                f"bad compression {spec!r}: {wrapper!r} is not a wrapper; write "
                f"[ef |] [unbiased |] compressor, compressor one of {', '.join(COMPRESSORS)}"
            )
    if len(set(wrappers)) != len(wrappers):
        raise ConfigError(
            f"bad compression {spec!r}: a wrapper is given twice; write [ef |] [unbiased |] "
            f"compressor"
        )
    name, _ = parse_spec(last, "compressor")
    if name in WRAPPERS or name == NONE:
        raise ConfigError(
            f"bad compression {spec!r}: it must end with a compressor, one of "
            f"{', '.join(COMPRESSORS)}"
        )
    compression = Compression(COMPRESSORS.create(last), "ef" in wrappers, "unbiased" in wrappers)
    if compression.unbiased and compression.compressor.keep_probability((1,)) is None:
        random = [
            n
            for n in COMPRESSORS
            if COMPRESSORS.get(n).keep_probability is not Compressor.keep_probability
        ]
        raise ConfigError(
            f"bad compression {spec!r}: unbiased rescales a random sparsifier, one of "
            f"{', '.join(random)}"
        )
    return compression


def _prefixed(parts: Parts, name: str) -> Parts:
    prefix = f"{name}/"
    return {key[len(prefix) :]: value for key, value in parts.items() if key.startswith(prefix)}
