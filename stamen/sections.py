"""A component's run-config keys: one frozen dataclass of fields with their defaults, next to
the component's code, which ``stamen.experiment.Experiment`` composes.

A field ``num_clients`` is the run-config key ``num-clients``. A section states which of its
fields must be positive, non-negative or in [0, 1] (checked for every run), the strategies it
provides, the values those strategies need where a run leaves a key at its default, and its
own ``check`` of the whole experiment (run after the field checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class Section:
    """Base of every settings section; subclasses are ``@dataclass(frozen=True)``."""

    POSITIVE: ClassVar[tuple[str, ...]] = ()
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ()
    UNIT_INTERVAL: ClassVar[tuple[str, ...]] = ()
    # strategy names this component provides, and what each needs (key -> value) where the
    # run leaves a key at its global default: e.g. FedDF's validation holdout
    STRATEGIES: ClassVar[tuple[str, ...]] = ()
    STRATEGY_DEFAULTS: ClassVar[Mapping[str, Mapping[str, Any]]] = {}

    def check(self) -> None:
        """Checks across keys (this section's and others'), after every field check."""


def key_of(field_name: str) -> str:
    """Run-config key of a dataclass field: ``num_clients`` -> ``num-clients``."""
    return field_name.replace("_", "-")
