"""The interface and registry of the compressors of one tensor of an update.

A compressor maps a tensor to its **parts**, the named tensors that travel (values, and
indices only where the method needs them, in the smallest unsigned integer type), and the
parts back to the tensor they stand for. ``parts_layout`` states the parts' shapes and dtypes
for a tensor's shape, so the receiver refuses anything else before decoding it.

Randomness comes in two streams (``Draws``): ``shared`` is the same on every client and on the
server for one round and tensor (rand-k's and random-block's coordinates, PowerSGD's
initial factor), so those coordinates never travel; ``private`` is the sender's own (QSGD's
stochastic rounding). Methods with state across rounds (PowerSGD's warm start) get and return
it as named tensors.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from stamen.errors import ConfigError
from stamen.registry import Registry
from stamen.seeding import ClientStream, client_rng, shared_generator

Parts = dict[str, Tensor]
Tensors = Sequence[tuple[str, tuple[int, ...]]]  # each tensor's name and shape, in order
PartsLayout = dict[str, tuple[tuple[int, ...], torch.dtype]]


class MalformedPayload(ValueError):
    """Parts that no sender following the method could have sent (the receiver drops them)."""


@dataclass(frozen=True)
class Draws:
    """The random streams of one tensor in one round."""

    shared: torch.Generator  # every party's alike
    private: torch.Generator  # the sender's own


UPLINK: tuple[int, ...] = ()
DOWNLINK: tuple[int, ...] = (1,)


@dataclass(frozen=True)
class RoundDraws:
    """The streams of one round: ``shared`` from (run seed, round, tensor index, channel),
    the same for every client and the server; ``private`` from the sender's own seed. The
    channel (``UPLINK``, ``DOWNLINK``) keeps the server's coordinates apart from the clients'."""

    seed: int
    server_round: int
    private_seed: int = 0
    channel: tuple[int, ...] = UPLINK

    def __post_init__(self) -> None:
        object.__setattr__(self, "_private", torch.Generator().manual_seed(self.private_seed))

    @classmethod
    def of_client(cls, seed: int, server_round: int, partition_id: int) -> RoundDraws:
        """The uplink draws of client ``partition_id``: its private stream is its own
        compression stream of the round."""
        stream = client_rng(seed, server_round, partition_id, ClientStream.COMPRESSION)
        return cls(seed, server_round, int(stream.integers(2**62)))

    def of(self, tensor: int) -> Draws:
        shared = shared_generator(self.seed, self.server_round, tensor, *self.channel)
        return Draws(shared, self._private)


class Compressor(ABC):
    """Compression of one tensor (flattened C-order where the method needs no shape)."""

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:  # noqa: B027  (optional: compressors without arguments)
        """Raise a one-line ConfigError for invalid arguments."""

    @abstractmethod
    def parts_layout(self, shape: tuple[int, ...]) -> PartsLayout:
        """The shape and dtype of each part sent for a tensor of ``shape``."""

    @abstractmethod
    def compress(self, x: Tensor, draws: Draws, state: Parts) -> tuple[Parts, Parts]:
        """The parts for ``x`` and the method's new state (``state``: its previous one)."""

    @abstractmethod
    def decompress(self, parts: Parts, shape: tuple[int, ...], draws: Draws) -> Tensor:
        """The tensor of ``shape`` that ``parts`` stand for (float32)."""

    def keep_probability(self, shape: tuple[int, ...]) -> float | None:
        """For a random sparsifier, the probability that a coordinate is kept (``unbiased``
        rescales by its inverse); None for any other method."""
        return None


COMPRESSORS: Registry[type[Compressor]] = Registry("compressor")


@dataclass(frozen=True)
class SharedSparsifier(Compressor):
    """Keeps ``ratio`` of each tensor's coordinates, chosen from the round's shared stream
    (the same on every client and the server), so only their values travel."""

    ratio: float
    NAME: ClassVar[str] = ""

    def check(self) -> None:
        require_ratio(self.NAME, self.ratio)

    def parts_layout(self, shape: tuple[int, ...]) -> PartsLayout:
        return {"values": ((kept(self.ratio, numel(shape)),), torch.float32)}

    def keep_probability(self, shape: tuple[int, ...]) -> float:
        return kept(self.ratio, numel(shape)) / numel(shape)


def index_dtype(size: int) -> torch.dtype:
    """The smallest unsigned integer type that holds the indices 0 .. size - 1."""
    for dtype, bits in ((torch.uint8, 8), (torch.uint16, 16), (torch.uint32, 32)):
        if size <= 2**bits:
            return dtype
    return torch.int64


def kept(ratio: float, size: int) -> int:
    """How many of ``size`` coordinates a sparsifier keeps: ``ratio * size``, at least one."""
    return min(size, max(1, round(ratio * size)))


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)


def split(vector: Tensor, tensors: Tensors) -> Iterator[tuple[str, tuple[int, ...], Tensor]]:
    """Each tensor's name, shape and values (a view of the flat ``vector``), in order."""
    offset = 0
    for name, shape in tensors:
        size = numel(shape)
        yield name, shape, vector[offset : offset + size].view(shape)
        offset += size
    if offset != vector.numel():
        raise ValueError(f"the tensors hold {offset} values, the update {vector.numel()}")


_BIT_WEIGHTS = torch.tensor([128, 64, 32, 16, 8, 4, 2, 1], dtype=torch.uint8)


def pack_bits(bits: Tensor) -> Tensor:
    """Booleans (n,) packed eight to a byte, most significant first: shape (ceil(n / 8),)."""
    padded = torch.zeros(-(-bits.numel() // 8) * 8, dtype=torch.uint8)
    padded[: bits.numel()] = bits.reshape(-1)
    return (padded.view(-1, 8) * _BIT_WEIGHTS).sum(1, dtype=torch.uint8)


def unpack_bits(packed: Tensor, size: int) -> Tensor:
    """The inverse of ``pack_bits``: booleans (size,)."""
    return (packed.reshape(-1, 1) & _BIT_WEIGHTS).ne(0).reshape(-1)[:size]


def require_ratio(name: str, ratio: Any) -> None:
    """Refuse a ratio outside (0, 1]."""
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0 < ratio <= 1:
        raise ConfigError(f"{name}: ratio must be a number in (0, 1], got {ratio!r}")


def require_integer(name: str, argument: str, value: Any, minimum: int) -> None:
    """Refuse a non-integer or an integer below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: {argument} must be an integer >= {minimum}, got {value!r}")
