"""Flower strategies (thin) and the pure math they call."""

from stamen.strategies import flower_builtin  # noqa: F401  (registers fedavg, fedavgm, fedprox)
from stamen.strategies.registry import STRATEGIES, build_strategy

__all__ = ["STRATEGIES", "build_strategy"]
