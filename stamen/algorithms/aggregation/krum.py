"""Krum and Multi-Krum (Blanchard et al., NeurIPS 2017, arXiv 1703.02757).

Each input's score is the sum of its squared Euclidean distances to its ``n - f - 2`` nearest
other inputs (at least 1, as flwr's ``select_multikrum`` / ``aggregate_krum``); Krum returns
the input with the lowest score, Multi-Krum the mean of the ``m`` lowest-scoring inputs.
Ties go to the lower index (a stable sort). Distances come from one Gram matrix, centred when the
inputs share a large offset so that they hold in float32 (``primitives.squared_distances``).

``krum(f, power=4)`` sums FOURTH powers of the distances instead: that is what the bucketing
paper's code computes (its ``pairwise_euclidean_distances`` returns squared distances and
``_compute_scores`` squares them again), so its Krum results are reproduced with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stamen.algorithms.aggregation.base import (
    AGGREGATORS,
    check_updates,
    require,
    require_count,
)
from stamen.algorithms.aggregation.primitives import combine_rows, squared_distances


def krum_scores(distances: Tensor, f: int, power: float = 2) -> Tensor:
    """Krum scores, shape (n,), from squared distances (n, n): the sum over the n-f-2 nearest
    others of the distance to the ``power``."""
    n = distances.shape[0]
    num_closest = max(1, n - f - 2)
    if n == 1:
        return torch.zeros(1, dtype=distances.dtype, device=distances.device)
    # The diagonal is excluded explicitly rather than assumed to sort first (duplicates tie at 0).
    others = distances + torch.diag(
        torch.full((n,), float("inf"), dtype=distances.dtype, device=distances.device)
    )
    nearest = torch.topk(others, min(num_closest, n - 1), dim=1, largest=False).values
    return (nearest if power == 2 else nearest ** (power / 2)).sum(dim=1)


def krum_select(updates: Tensor, f: int, m: int, power: float = 2) -> Tensor:
    """Indices of the ``m`` best-scored rows of ``updates`` (n, d), best first."""
    scores = krum_scores(squared_distances(updates), f, power)
    return torch.sort(scores, stable=True).indices[:m]


def _check_krum(name: str, f: int, num_inputs: int) -> None:
    require(
        num_inputs > 2 * f + 2,
        f"{name} needs n > 2f + 2 inputs, got n={num_inputs} with f={f}",
    )


@AGGREGATORS.register("krum")
@dataclass(frozen=True)
class Krum:
    """The single input with the lowest Krum score; needs n > 2f + 2."""

    f: int
    power: float = 2

    def __post_init__(self) -> None:
        require_count("krum: f", self.f)
        number = isinstance(self.power, int | float) and not isinstance(self.power, bool)
        require(number and self.power > 0, f"krum: power must be a number > 0, got {self.power!r}")

    def check(self, num_inputs: int) -> None:
        _check_krum("krum", self.f, num_inputs)

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, None]:
        check_updates(updates)
        self.check(updates.shape[0])
        best = krum_select(updates, self.f, 1, self.power)
        return updates[best[0]].clone(), None


@AGGREGATORS.register("multi-krum")
@dataclass(frozen=True)
class MultiKrum:
    """Mean of the ``m`` inputs with the lowest Krum scores; needs n > 2f + 2 and 1 <= m <= n."""

    f: int
    m: int

    def __post_init__(self) -> None:
        require_count("multi-krum: f", self.f)
        require_count("multi-krum: m", self.m, minimum=1)

    def check(self, num_inputs: int) -> None:
        _check_krum("multi-krum", self.f, num_inputs)
        require(
            self.m <= num_inputs,
            f"multi-krum needs m <= n, got m={self.m} with n={num_inputs} inputs",
        )

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, None]:
        check_updates(updates)
        self.check(updates.shape[0])
        # A weight vector and one product: no (m, d) copy of the chosen rows.
        weights = torch.zeros(updates.shape[0], dtype=torch.float64, device=updates.device)
        weights[krum_select(updates, self.f, self.m).to(updates.device)] = 1.0 / self.m
        return combine_rows(weights, updates), None
