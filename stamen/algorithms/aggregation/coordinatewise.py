"""Coordinate-wise rules: mean, median and trimmed mean (Yin et al., ICML 2018, arXiv 1803.01498).

Conventions: for an even number of inputs the median is the mean of the two middle values (as
``numpy.median``; ``torch.median`` would return the lower one). ``trimmed-mean(b)`` drops the b
largest and b smallest values of each coordinate and averages the remaining n - 2b; flwr's
``trim_mean(array, cut_fraction)`` drops ``int(cut_fraction * n)`` per side, so
``b = int(cut_fraction * n)`` gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from stamen.algorithms.aggregation.base import (
    AGGREGATORS,
    check_updates,
    require,
    require_count,
    require_honest_majority,
)
from stamen.algorithms.aggregation.primitives import sorted_columns


@AGGREGATORS.register("mean")
@dataclass(frozen=True)
class Mean:
    """Plain average; not robust (a single input can move it arbitrarily)."""

    def check(self, num_inputs: int) -> None:
        require(num_inputs >= 1, "mean needs at least 1 input")

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, None]:
        check_updates(updates)
        return updates.mean(dim=0), None


@AGGREGATORS.register("median")
@dataclass(frozen=True)
class Median:
    """Coordinate-wise median; even n -> mean of the two middle values.

    ``f`` (default 0) is only used to check feasibility: it needs 2f < n.
    """

    f: int = 0

    def __post_init__(self) -> None:
        require_count("median: f", self.f)

    def check(self, num_inputs: int) -> None:
        require_honest_majority("median", self.f, num_inputs)

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, None]:
        check_updates(updates)
        self.check(updates.shape[0])
        return coordinate_median(updates), None


def coordinate_median(updates: Tensor) -> Tensor:
    """Coordinate-wise median of (n, d) -> (d,); even n averages the two middle values."""
    n = updates.shape[0]
    if n == 1:
        return updates[0].clone()
    return median_of_sorted(sorted_columns(updates).to(updates.device))


def median_of_sorted(ordered: Tensor) -> Tensor:
    """Median of each column of a column-sorted (n, d) tensor; even n averages the middle two."""
    n = ordered.shape[0]
    if n % 2:
        return ordered[n // 2].clone()
    return (ordered[n // 2 - 1] + ordered[n // 2]) / 2


@AGGREGATORS.register("trimmed-mean")
@dataclass(frozen=True)
class TrimmedMean:
    """Drop the ``b`` largest and ``b`` smallest values per coordinate, average the rest."""

    b: int

    def __post_init__(self) -> None:
        require_count("trimmed-mean: b", self.b)

    def check(self, num_inputs: int) -> None:
        require(
            2 * self.b < num_inputs,
            f"trimmed-mean needs 2b < n, got b={self.b} with n={num_inputs} inputs",
        )

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, None]:
        check_updates(updates)
        self.check(updates.shape[0])
        if self.b == 0:
            return updates.mean(dim=0), None
        ordered = sorted_columns(updates).to(updates.device)
        return ordered[self.b : updates.shape[0] - self.b].mean(dim=0), None
