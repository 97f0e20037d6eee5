"""Flower strategies (thin) and the pure math they call.

``STRATEGIES``, ``STRATEGY_DEFAULTS`` and ``build_strategy`` register every strategy on first
use, so that the math (``stamen.strategies.aggregation``) imports with torch and numpy alone,
without flwr.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("STRATEGIES", "STRATEGY_DEFAULTS", "build_strategy"):
        from stamen.strategies import feddf, flower_builtin, mime, registry, robust, secure  # noqa: F401

        return getattr(registry, name)
    raise AttributeError(f"module 'stamen.strategies' has no attribute {name!r}")
