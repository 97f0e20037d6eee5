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

Krum is scored as the aggregation rule scores it (``krum_scores``): each vector's score is the
sum of its squared distances to its ``n - f - 2`` nearest other vectors, and Krum picks the
smallest score (ties go to the lower index, i.e. to an honest update). Simulation only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from stamen.algorithms.aggregation.krum import krum_scores
from stamen.algorithms.aggregation.primitives import squared_distances
from stamen.attacks.base import OmniscientAttack, require
from stamen.attacks.registry import ATTACKS


@ATTACKS.register("krum-attack")
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
        # Summed distances to the n - f - 2 = h - 2 nearest: Krum's with f = 0 over the honest.
        nearest = krum_scores(squared_distances(x), 0, power=1)
        return float(
            nearest.min() / ((n - 2 * num_byzantine - 1) * math.sqrt(d))
            + x.norm(dim=1).max() / math.sqrt(d)
        )

    def crafted(self, honest: Tensor, num_byzantine: int) -> Tensor:
        h = honest.shape[0]
        x = honest.double()
        s = torch.sign(x.mean(dim=0))
        lam = self.lambda_upper_bound(honest, num_byzantine)
        # Only honest-to-Byzantine distances change with lambda: |x_i + lam s|^2 is a quadratic.
        distances = torch.zeros((h + num_byzantine,) * 2, dtype=torch.float64, device=x.device)
        distances[:h, :h] = squared_distances(x)
        sq_norms, inner, s_sq = (x * x).sum(dim=1), x @ s, (s * s).sum()
        while True:
            to_byzantine = (sq_norms + 2.0 * lam * inner + lam * lam * s_sq).clamp_min(0.0)
            distances[:h, h:] = to_byzantine[:, None]
            distances[h:, :h] = to_byzantine[None, :]
            if int(krum_scores(distances, num_byzantine).argmin()) >= h or lam < self.threshold:
                break
            lam /= 2.0
        return (-lam * s).to(honest.dtype)
