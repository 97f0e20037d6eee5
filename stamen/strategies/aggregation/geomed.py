"""Geometric median by smoothed Weiszfeld: RFA (Pillutla, Kakade, Harchaoui, arXiv 1912.13445).

``v <- sum_i beta_i x_i / sum_i beta_i`` with ``beta_i = (1/n) / max(nu, ||x_i - v||)``, run for
``T`` iterations from ``v = 0`` (as the bucketing paper's code, arXiv 2006.09365: T = 8,
nu = 0.1). ``v`` stays a combination ``c^T X`` of the inputs, so ``||x_i - v||^2 =
G_ii - 2 (G c)_i + c^T G c`` is computed from one Gram matrix and ``v`` is formed once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stamen.strategies.aggregation.base import (
    AGGREGATORS,
    check_updates,
    require_count,
    require_honest_majority,
    require_positive,
)
from stamen.strategies.aggregation.primitives import combine_rows, gram_matrix


def weiszfeld_coefficients(gram: Tensor, iterations: int, nu: float) -> Tensor:
    """Coefficients c (n,) with ``v = c^T X`` after ``iterations`` smoothed Weiszfeld steps."""
    n = gram.shape[0]
    norms = torch.diagonal(gram)
    coefficients = torch.zeros(n, dtype=gram.dtype, device=gram.device)
    for _ in range(iterations):
        projection = gram @ coefficients
        squared = norms - 2.0 * projection + coefficients @ projection
        betas = (1.0 / n) / squared.clamp_min(0.0).sqrt().clamp_min(nu)
        coefficients = betas / betas.sum()
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
        coefficients = weiszfeld_coefficients(gram_matrix(updates), self.T, float(self.nu))
        return combine_rows(coefficients, updates), None


AGGREGATORS.register("rfa", GeometricMedian)
