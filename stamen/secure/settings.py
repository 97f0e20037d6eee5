"""The run-config keys of secure two-server aggregation: where S2 and the dealer run (empty:
a simulation starts them), the fixed-point bits, and each client's clipping and noise. S2
computes distances only, so the strategy brings ``aggregator = "krum"`` unless the run sets
a distance rule itself."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from stamen.errors import ConfigError
from stamen.sections import Section, key_of
from stamen.secure.rules import distance_rule


@dataclass(frozen=True)
class SecureSettings(Section):
    secure_s2: str = ""
    secure_dealer: str = ""
    secure_certs: str = ""
    secure_bits: int = 19
    secure_clip: float = 1.0
    secure_noise: float = 0.0

    STRATEGIES = ("secure",)
    STRATEGY_DEFAULTS = {"secure": {"aggregator": "krum"}}  # S2 runs on distances only

    def check(self) -> None:
        """A distance-based rule, a sound validity range, and S2 and the dealer together."""
        if self.strategy != "secure":
            return
        per_round = max(int(self.num_clients * self.fraction_train), 1)
        distance_rule(self.aggregator, per_round, self.num_byzantine, torch.Generator())
        if not 1 <= self.secure_bits <= 28:
            raise ConfigError(f"secure-bits must be in [1, 28], got {self.secure_bits}")
        for name in ("secure_clip", "secure_noise"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{key_of(name)} must be >= 0, got {getattr(self, name)}")
        given = [bool(self.secure_s2), bool(self.secure_dealer), bool(self.secure_certs)]
        if any(given) and not all(given):
            raise ConfigError(
                "set secure-s2, secure-dealer and secure-certs together (or none: a simulation "
                "starts S2 and the dealer itself)"
            )
