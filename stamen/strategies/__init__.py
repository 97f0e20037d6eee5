"""Flower strategies: thin adapters between messages and the pure algorithms.

Importing this package registers every strategy in ``STRATEGIES``; ``build_strategy`` makes
the one a run names.
"""

from stamen.strategies import (  # noqa: F401  (register)
    feddf,
    flower_builtin,
    mime,
    powersgd,
    robust,
    secure,
)
from stamen.strategies.registry import STRATEGIES, build_strategy

__all__ = ["STRATEGIES", "build_strategy"]
