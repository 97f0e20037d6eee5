"""Geometric median by smoothed Weiszfeld: RFA (Pillutla, Kakade, Harchaoui, arXiv 1912.13445).

``v <- sum_i beta_i x_i / sum_i beta_i`` with ``beta_i = (1/n) / max(nu, ||x_i - v||)``, run for
``T`` iterations from ``v = 0`` (as the bucketing paper's code, arXiv 2006.09365: T = 8,
nu = 0.1). ``v`` stays a combination of the inputs and the origin with coefficients summing to 1,
so ``||x_i - v||^2`` comes from one Gram matrix of those n + 1 points (centred when the inputs
share a large offset, so that it holds in float32: ``primitives.gram_with_centre``) and ``v`` is
formed once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stamen.algorithms.aggregation.base import (
    AGGREGATORS,
    check_updates,
    require_count,
    require_honest_majority,
    require_positive,
)
from stamen.algorithms.aggregation.primitives import (
    combine_rows,
    gram_with_centre,
    squared_distances_to,
)


def weiszfeld_coefficients(gram: Tensor, iterations: int, nu: float) -> Tensor:
    """Coefficients c (n + 1,) with ``v = sum_k c_k p_k`` after ``iterations`` smoothed Weiszfeld
    steps from ``p_n``, given the Gram matrix (n + 1, n + 1) of n inputs and the start ``p_n``."""
    n = gram.shape[0] - 1
    coefficients = torch.zeros(n + 1, dtype=gram.dtype, device=gram.device)
    coefficients[n] = 1.0
    for _ in range(iterations):
        distances = squared_distances_to(gram, coefficients)[:n].sqrt()
        betas = (1.0 / n) / distances.clamp_min(nu)
        coefficients = torch.zeros_like(coefficients)
        coefficients[:n] = betas / betas.sum()
    return coefficients


@AGGREGATORS.register("geomed")
@dataclass(frozen=True)
class GeometricMedian:
    """Smoothed Weiszfeld geometric median; ``f`` (default 0) only checks 2f < n."""

    T: int = 8
    nu: float = 0.1
    f: int = 0

    def __post_init__(self) -> None:
        require_count("geomed: T", self.T, minimum=1)
        require_positive("geomed: nu", self.nu)
        require_count("geomed: f", self.f)

    def check(self, num_inputs: int) -> None:
        require_honest_majority("geomed", self.f, num_inputs)

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, None]:
        check_updates(updates)
        self.check(updates.shape[0])
        gram = gram_with_centre(updates, None)
        coefficients = weiszfeld_coefficients(gram, self.T, float(self.nu))
        # After one step the origin's coefficient is 0: v is a combination of the inputs alone.
        return combine_rows(coefficients[:-1], updates), None


AGGREGATORS.register("rfa", GeometricMedian)
