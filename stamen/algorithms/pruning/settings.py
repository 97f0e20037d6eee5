"""The run-config key of pruning: ``pruning``, a method applied by the server to any
strategy's model (``"none"``, or e.g. ``"dpf(sparsity=0.9, every=2)"``), checked before any
round runs. Not with strategies whose messages carry another thing than one model, nor with
downlink compression (the pruned model already travels sparse)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from stamen.algorithms.pruning.methods import parse_pruning
from stamen.errors import ConfigError
from stamen.sections import Section

NO_PRUNING = ("mime", "mimelite", "secure", "powersgd")


@dataclass(frozen=True)
class PruningSettings(Section):
    pruning: str = "none"

    def check(self) -> None:
        if pruning_of(self) is None:
            return
        if self.strategy in NO_PRUNING:
            raise ConfigError(
                f"pruning is not supported by strategy {self.strategy}: set pruning = 'none' "
                f"or a strategy other than {', '.join(NO_PRUNING)}"
            )
        if self.downlink != "none":
            raise ConfigError("pruning sends the pruned model sparse: set downlink = 'none'")
        if self.client_models:
            raise ConfigError("pruning needs one architecture: leave client-models empty")


def pruning_of(settings: Any) -> Any:
    """The run's pruning method, or None."""
    return _parsed(settings.pruning)


@functools.lru_cache(maxsize=16)
def _parsed(spec: str) -> Any:
    return parse_pruning(spec)
