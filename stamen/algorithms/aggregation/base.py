"""Interfaces and registries of the robust aggregation rules and pre-aggregators.

An aggregation rule maps stacked client updates ``(n, d)`` to one vector ``(d,)``; a
pre-aggregator maps ``(n, d)`` to ``(n', d)`` (bucketing, resampling) before the rule runs.
Both are small frozen dataclasses made by the factories registered below (optax style): the
rule's state, where it has one (centred clipping), is passed in and returned explicitly.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from stamen.errors import ConfigError
from stamen.registry import Registry

RandomGenerator = torch.Generator | np.random.Generator


@runtime_checkable
class AggregationRule(Protocol):
    """A robust aggregation rule over stacked updates."""

    def check(self, num_inputs: int) -> None:
        """Raise a one-line ConfigError if the rule cannot run on ``num_inputs`` inputs."""

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Aggregate ``updates`` (shape (n, d)) into shape (d,); return it and the new state."""


@runtime_checkable
class PreAggregator(Protocol):
    """A randomised map from n inputs to ``num_outputs(n)`` inputs."""

    def num_outputs(self, num_inputs: int) -> int:
        """How many vectors ``apply`` returns for ``num_inputs`` inputs."""

    def byzantine_after(self, num_inputs: int, num_byzantine: int) -> int:
        """Worst-case number of corrupted outputs when ``num_byzantine`` inputs are bad."""

    def apply(self, updates: Tensor, generator: RandomGenerator) -> Tensor:
        """Map ``updates`` (shape (n, d)) to shape (num_outputs(n), d)."""


AGGREGATORS: Registry[type] = Registry("aggregator")
PRE_AGGREGATORS: Registry[type] = Registry("pre-aggregator")


def check_updates(updates: Tensor) -> None:
    """Refuse anything that is not a non-empty floating (n, d) tensor."""
    if not isinstance(updates, Tensor) or updates.ndim != 2 or updates.shape[0] == 0:
        shape = tuple(updates.shape) if isinstance(updates, Tensor) else type(updates).__name__
        raise ConfigError(f"updates must be a non-empty tensor of shape (n, d), got {shape}")
    if not updates.is_floating_point():
        raise ConfigError(f"updates must be a floating-point tensor, got {updates.dtype}")


def require(condition: bool, message: str) -> None:
    """Raise ``ConfigError(message)`` unless ``condition`` holds."""
    if not condition:
        raise ConfigError(message)


def require_honest_majority(rule: str, f: int, num_inputs: int) -> None:
    """Refuse ``f`` Byzantine inputs out of ``num_inputs`` unless ``f < n/2``."""
    require(
        2 * f < num_inputs,
        f"{rule} needs f < n/2, got f={f} with n={num_inputs} inputs",
    )


def require_count(name: str, value: Any, minimum: int = 0) -> None:
    """Refuse a non-integer or too small count argument."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")


def require_positive(name: str, value: Any) -> None:
    """Refuse a non-number or a number <= 0."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"{name} must be a number > 0, got {value!r}")
