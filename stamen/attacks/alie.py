"""ALIE, "A Little Is Enough" (Baruch, Baruch & Goldberg, NeurIPS 2019, arXiv:1902.06156).

The authors' Byzantine clients send the gradient ``mu - z * sigma`` (per coordinate) of the
honest gradients, small enough to stay inside the spread of honest values. Stamen's updates are
model changes, ``-lr`` times a gradient for one SGD step, so the same attack is the update

    mean + z * std

of the honest updates (``-lr (mu - z sigma) = mean + z std``). Without an explicit ``z`` the
paper's choice is used: with ``n`` clients of which ``f`` are Byzantine,

    s = floor(n / 2 + 1) - f,        z = Phi^{-1}((n - s) / n).

(n = 25, f = 5 gives s = 8 and z = Phi^{-1}(0.68) ~= 0.4677.) The bucketing paper's code uses
``(n - f - s) / (n - f)`` instead; we follow the ALIE paper.

``std`` is the *sample* standard deviation (Bessel-corrected, ``torch.std`` default), as in
the reference implementations; it needs at least two honest updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import ClassVar

import torch
from torch import Tensor

from stamen.attacks.base import OmniscientAttack, require
from stamen.attacks.registry import ATTACKS


def alie_z(num_clients: int, num_byzantine: int) -> float:
    """The paper's ``z`` for ``n`` clients of which ``f`` are Byzantine."""
    s = math.floor(num_clients / 2 + 1) - num_byzantine
    if not 0 < s < num_clients:
        raise ValueError(
            f"ALIE needs 0 < floor(n/2 + 1) - f < n, got n={num_clients}, f={num_byzantine}"
        )
    return NormalDist().inv_cdf((num_clients - s) / num_clients)


@ATTACKS.register("alie")
@dataclass(frozen=True)
class ALIE(OmniscientAttack):
    """Send ``mean + z * std`` of the honest updates: the authors' ``mu - z sigma`` of
    gradients, in update space (simulation only).

    Parameters
    ----------
    z : float or None
        The number of standard deviations; ``None`` computes it from ``n`` and ``f``.
    """

    z: float | None = None

    min_honest: ClassVar[int] = 2

    def __post_init__(self) -> None:
        require(
            self.z is None or (isinstance(self.z, (int, float)) and not isinstance(self.z, bool)),
            f"alie: z must be a number or None, got {self.z!r}",
        )

    def crafted(self, honest: Tensor, num_byzantine: int) -> Tensor:
        z = self.z if self.z is not None else alie_z(honest.shape[0] + num_byzantine, num_byzantine)
        std, mean = torch.std_mean(honest, dim=0)
        return mean + z * std
