"""The full-knowledge attack on Krum of Fang, Cao, Jia & Gong (USENIX Security 2020,
"Local Model Poisoning Attacks to Byzantine-Robust Federated Learning", arXiv:1911.11815).

In update space (the global model ``w_Re`` is the origin) the first Byzantine update is
``w_1 = -lambda * s`` with ``s = sign(mean of the honest updates)``, the direction the model
would move without attack; the other ``f - 1`` Byzantine clients send copies of ``w_1`` (the
paper's "close to ``w_1``" with distance 0), which makes ``w_1`` look central to Krum.
``lambda`` starts at the paper's upper bound

    1 / ((n - 2f - 1) sqrt(d)) * min_{i honest} sum_{l in N_i} |x_l - x_i|
        + 1 / sqrt(d) * max_{i honest} |x_i|,

with ``N_i`` the ``n - f - 2`` honest updates nearest to ``x_i``, and is halved until Krum
picks ``w_1`` or ``lambda`` falls below ``threshold`` (then the last, tiny ``lambda`` is used).

Krum is scored inline (``krum_scores``): each vector's score is the sum of its squared
distances to its ``n - f - 2`` nearest other vectors, and Krum picks the smallest score
(ties go to the lower index, i.e. to an honest update). Simulation only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stamen.attacks.base import OmniscientAttack, check_round, require
from stamen.attacks.min_max import pairwise_sq_distances


def krum_scores(sq_distances: Tensor, num_byzantine: int) -> Tensor:
    """Krum scores (``Tensor, shape (n,)``) from squared pairwise distances ``(n, n)``."""
    n = sq_distances.shape[0]
    k = n - num_byzantine - 2
    if k < 1:
        raise ValueError(f"Krum needs n - f - 2 >= 1, got n={n}, f={num_byzantine}")
    off_diagonal = sq_distances + torch.diag(torch.full((n,), math.inf, dtype=sq_distances.dtype))
    return off_diagonal.topk(k, dim=1, largest=False).values.sum(dim=1)


@dataclass(frozen=True)
class KrumAttack(OmniscientAttack):
    """Fang et al.'s attack on Krum: all ``f`` send ``-lambda * sign(mean)`` (simulation only)."""

    threshold: float = 1e-5

    def __post_init__(self) -> None:
        require(
            isinstance(self.threshold, (int, float)) and self.threshold > 0,
            f"krum-attack: threshold must be a number > 0, got {self.threshold!r}",
        )

    def lambda_upper_bound(self, honest: Tensor, num_byzantine: int) -> float:
        """The paper's starting ``lambda`` for ``n = h + f`` clients."""
        h, d = honest.shape
        n = h + num_byzantine
        if n - 2 * num_byzantine - 1 < 1 or n - num_byzantine - 2 < 1:
            raise ValueError(
                f"the Krum attack needs n > 2f + 1 and n > f + 2, got n={n}, f={num_byzantine}"
            )
        x = honest.double()
        dist = pairwise_sq_distances(x).sqrt()
        neighbours = dist + torch.diag(torch.full((h,), math.inf, dtype=dist.dtype))
        k = min(n - num_byzantine - 2, h - 1)
        nearest = (
            neighbours.topk(k, dim=1, largest=False).values.sum(dim=1)
            if k > 0
            else dist.new_zeros(h)
        )
        return float(
            nearest.min() / ((n - 2 * num_byzantine - 1) * math.sqrt(d))
            + x.norm(dim=1).max() / math.sqrt(d)
        )

    def craft(
        self,
        honest: Tensor,
        num_byzantine: int,
        generator: torch.Generator,
        state: Any = None,
        clients: Sequence[int] | None = None,
    ) -> tuple[Tensor, Any]:
        check_round(honest, num_byzantine)
        h = honest.shape[0]
        if num_byzantine == 0:
            return honest.new_empty((0, honest.shape[1])), state
        x = honest.double()
        s = torch.sign(x.mean(dim=0))
        lam = self.lambda_upper_bound(honest, num_byzantine)
        # Only honest-to-Byzantine distances change with lambda: |x_i + lam s|^2 is a quadratic.
        distances = torch.zeros((h + num_byzantine,) * 2, dtype=torch.float64, device=x.device)
        distances[:h, :h] = pairwise_sq_distances(x)
        sq_norms, inner, s_sq = (x * x).sum(dim=1), x @ s, (s * s).sum()
        while True:
            to_byzantine = (sq_norms + 2.0 * lam * inner + lam * lam * s_sq).clamp_min(0.0)
            distances[:h, h:] = to_byzantine[:, None]
            distances[h:, :h] = to_byzantine[None, :]
            if int(krum_scores(distances, num_byzantine).argmin()) >= h or lam < self.threshold:
                break
            lam /= 2.0
        crafted = (-lam * s).to(honest.dtype)
        return crafted.expand(num_byzantine, -1).clone(), state
