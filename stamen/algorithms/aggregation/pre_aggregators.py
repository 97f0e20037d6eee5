"""Pre-aggregators that mix inputs before a robust rule: bucketing and resampling.

Bucketing is Algorithm 1 of Karimireddy, He, Jaggi, ICLR 2022 (arXiv 2006.09365): shuffle the
n inputs with a seeded permutation and average consecutive buckets of size s, giving
``ceil(n/s)`` outputs (the last bucket holds the remainder). Resampling is the paper's first
version ("s-replacement"): n outputs, each the mean of s inputs drawn with replacement such that
every input is used exactly s times. We realise it by shuffling the multiset
``{0,...,0, 1,...,1, ..., n-1}`` (each index s times) and cutting it into n groups of s, so an
output may repeat an input.

Both are one matrix product ``M @ X`` with a sparse-in-spirit (k, n) mixing matrix ``M``; no copy
of the permuted inputs is made. Randomness comes only from the generator passed in.

Byzantine inputs after mixing (used to check the rule that follows): each input lands in one
bucket, so bucketing leaves at most ``min(f, ceil(n/s))`` corrupted outputs — the bound the
paper uses (its rule must tolerate a fraction ``s * f / n`` of bad buckets). Under resampling an
input appears in up to s outputs: at most ``min(s * f, n)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stamen.algorithms.aggregation.base import (
    PRE_AGGREGATORS,
    RandomGenerator,
    check_updates,
    require_count,
)
from stamen.errors import ConfigError


def random_permutation(n: int, generator: RandomGenerator) -> Tensor:
    """A permutation of range(n) (CPU int64) drawn from a torch or numpy generator."""
    if isinstance(generator, np.random.Generator):
        return torch.from_numpy(generator.permutation(n)).to(torch.int64)
    if isinstance(generator, torch.Generator):
        return torch.randperm(n, generator=generator, device=generator.device).cpu()
    raise ConfigError(
        "generator must be a torch.Generator or numpy.random.Generator, "
        f"got {type(generator).__name__}"
    )


@PRE_AGGREGATORS.register("bucketing")
@dataclass(frozen=True)
class Bucketing:
    """Seeded shuffle, then means of consecutive buckets of size ``s``: ceil(n/s) outputs."""

    s: int = 2

    def __post_init__(self) -> None:
        require_count("bucketing: s", self.s, minimum=1)

    def num_outputs(self, num_inputs: int) -> int:
        return math.ceil(num_inputs / self.s)

    def byzantine_after(self, num_inputs: int, num_byzantine: int) -> int:
        return min(num_byzantine, self.num_outputs(num_inputs))

    def apply(self, updates: Tensor, generator: RandomGenerator) -> Tensor:
        check_updates(updates)
        matrix = self.mixing(updates.shape[0], generator)
        return matrix.to(device=updates.device, dtype=updates.dtype) @ updates

    def mixing(self, n: int, generator: RandomGenerator) -> Tensor:
        """The (ceil(n/s), n) float64 matrix whose rows average the shuffled buckets."""
        order = random_permutation(n, generator)
        buckets = [order[i : i + self.s] for i in range(0, n, self.s)]
        matrix = torch.zeros(len(buckets), n, dtype=torch.float64)
        for row, members in enumerate(buckets):
            matrix[row, members] = 1.0 / len(members)
        return matrix


@PRE_AGGREGATORS.register("resampling")
@dataclass(frozen=True)
class Resampling:
    """n outputs, each the mean of ``s`` inputs; every input used exactly ``s`` times."""

    s: int = 2

    def __post_init__(self) -> None:
        require_count("resampling: s", self.s, minimum=1)

    def num_outputs(self, num_inputs: int) -> int:
        return num_inputs

    def byzantine_after(self, num_inputs: int, num_byzantine: int) -> int:
        return min(self.s * num_byzantine, num_inputs)

    def apply(self, updates: Tensor, generator: RandomGenerator) -> Tensor:
        check_updates(updates)
        n = updates.shape[0]
        draws = torch.arange(n).repeat(self.s)[random_permutation(n * self.s, generator)]
        matrix = torch.zeros(n, n, dtype=torch.float64)
        rows = torch.arange(n).repeat_interleave(self.s)
        matrix.index_put_(
            (rows, draws),
            torch.full((n * self.s,), 1.0 / self.s, dtype=torch.float64),
            accumulate=True,
        )
        return matrix.to(device=updates.device, dtype=updates.dtype) @ updates
