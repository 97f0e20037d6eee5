"""Centred clipping (Karimireddy, He, Jaggi, ICML 2021, arXiv 2012.10333).

``v <- v + (1/n) sum_i clip_tau(x_i - v)`` with ``clip_tau(z) = z * min(1, tau / ||z||)``,
iterated ``iters`` times, starting from the PREVIOUS round's aggregate. That centre is explicit
state: ``aggregate(updates, state)`` returns ``(v, v)``; ``state=None`` starts from zero, a
tensor of shape (d,) starts from it. ``v = a v0 + c^T X`` is tracked by its n + 1 coefficients
(c, a), which sum to 1, so the distances ``||x_i - v||`` come from one Gram matrix of the inputs
and ``v0`` (centred when they share a large offset, as with worker momentum, so that it holds in
float32: ``primitives.gram_with_centre``) and ``v`` is formed once at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from stamen.algorithms.aggregation.base import (
    AGGREGATORS,
    check_updates,
    require,
    require_count,
    require_positive,
)
from stamen.algorithms.aggregation.primitives import (
    combine_rows,
    gram_with_centre,
    squared_distances_to,
)
from stamen.errors import ConfigError

# How the radius grows with worker momentum beta: a momentum m = sum_k beta^k g_k is about
# 1 / (1 - beta) times a gradient ("linear"; the bucketing paper's code uses it whenever
# beta > 0), or 1 / sqrt(1 - beta) times for independent noise ("sqrt").
CLIP_SCALINGS = {
    "none": lambda beta: 1.0,
    "linear": lambda beta: 1.0 / (1.0 - beta),
    "sqrt": lambda beta: 1.0 / math.sqrt(1.0 - beta),
}


@AGGREGATORS.register("cclip")
@dataclass(frozen=True)
class CenteredClip:
    """Centred clipping with radius ``tau`` and ``iters`` iterations; state = last aggregate."""

    tau: float = 10.0
    iters: int = 3

    def __post_init__(self) -> None:
        require_positive("cclip: tau", self.tau)
        require_count("cclip: iters", self.iters, minimum=1)

    def check(self, num_inputs: int) -> None:
        require(num_inputs >= 1, "cclip needs at least 1 input")

    def scaled_for_momentum(self, scaling: str, beta: float) -> CenteredClip:
        """The same rule with ``tau`` scaled for worker momentum ``beta`` (``CLIP_SCALINGS``)."""
        return replace(self, tau=self.tau * CLIP_SCALINGS[scaling](beta))

    def aggregate(self, updates: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check_updates(updates)
        n, d = updates.shape
        if state is not None and (not isinstance(state, Tensor) or state.shape != (d,)):
            got = tuple(state.shape) if isinstance(state, Tensor) else type(state).__name__
            raise ConfigError(f"cclip state must be None or a tensor of shape ({d},), got {got}")
        centre = None if state is None else state.to(updates)
        gram = gram_with_centre(updates, centre)
        # coefficients[:n] weigh the inputs, coefficients[n] the start v0; they sum to 1.
        coefficients = torch.zeros(n + 1, dtype=gram.dtype, device=gram.device)
        coefficients[n] = 1.0
        for _ in range(self.iters):
            distance = squared_distances_to(gram, coefficients)[:n].sqrt()
            weights = torch.where(distance > self.tau, self.tau / distance.clamp_min(1e-300), 1.0)
            coefficients = coefficients * (1.0 - weights.mean())
            coefficients[:n] += weights / n
        result = combine_rows(coefficients[:n], updates)
        if centre is not None:
            result = result + float(coefficients[n]) * centre
        return result, result
