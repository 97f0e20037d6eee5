"""Flower strategies (thin) and the pure math they call."""

from stamen.strategies import feddf, flower_builtin, mime, robust, secure  # noqa: F401  (register the strategies)
from stamen.strategies.registry import STRATEGIES, build_strategy

__all__ = ["STRATEGIES", "build_strategy"]
