"""Inner-product manipulation (Xie, Koyejo & Gupta, UAI 2020, arXiv:1903.03936).

Every Byzantine client sends ``-epsilon * mean(honest)``: a small ``epsilon`` keeps the
aggregate's inner product with the true gradient negative for rules that average, a large one
breaks rules such as Krum. The bucketing paper uses ``epsilon = 0.1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stamen.attacks.base import OmniscientAttack, check_round, require


@dataclass(frozen=True)
class IPM(OmniscientAttack):
    """Send ``-epsilon`` times the mean of the honest updates (simulation only)."""

    epsilon: float = 0.1

    def __post_init__(self) -> None:
        require(
            isinstance(self.epsilon, (int, float)) and not isinstance(self.epsilon, bool),
            f"ipm: epsilon must be a number, got {self.epsilon!r}",
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
        crafted = -self.epsilon * honest.mean(dim=0)
        return crafted.expand(num_byzantine, -1).clone(), state
