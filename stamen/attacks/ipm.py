"""Inner-product manipulation (Xie, Koyejo & Gupta, UAI 2020, arXiv:1903.03936).

Every Byzantine client sends ``-epsilon * mean(honest)``: a small ``epsilon`` keeps the
aggregate's inner product with the true gradient negative for rules that average, a large one
breaks rules such as Krum. The bucketing paper uses ``epsilon = 0.1``.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from stamen.attacks.base import OmniscientAttack, require
from stamen.attacks.registry import ATTACKS


@ATTACKS.register("ipm")
@dataclass(frozen=True)
class IPM(OmniscientAttack):
    """Send ``-epsilon`` times the mean of the honest updates (simulation only)."""

    epsilon: float = 0.1

    def __post_init__(self) -> None:
        require(
            isinstance(self.epsilon, (int, float)) and not isinstance(self.epsilon, bool),
            f"ipm: epsilon must be a number, got {self.epsilon!r}",
        )

    def crafted(self, honest: Tensor, num_byzantine: int) -> Tensor:
        return -self.epsilon * honest.mean(dim=0)
