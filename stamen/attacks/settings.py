"""The run-config keys of the Byzantine clients: how many, which attack, and their data."""

from __future__ import annotations

from dataclasses import dataclass

from stamen.attacks.base import OMNISCIENT
from stamen.attacks.registry import create_attack
from stamen.attacks.selection import byzantine_clients
from stamen.errors import ConfigError
from stamen.sections import Section

# "same": Byzantine clients get their share by `partition` like everyone; "iid": iid samples.
BYZANTINE_DATA = ("same", "iid")
# the strategies that simulate an omniscient attack on the server side
OMNISCIENT_STRATEGIES = ("robust", "secure")


@dataclass(frozen=True)
class AttackSettings(Section):
    attack: str = "none"
    num_byzantine: int = 0
    byzantine_data: str = "same"

    NON_NEGATIVE = ("num_byzantine",)

    def check(self) -> None:
        """Attack, Byzantine count and data fit together (before any run)."""
        if self.attack != "none":
            attack = create_attack(self.attack)
            if self.num_byzantine == 0:
                raise ConfigError(f"attack {self.attack!r} needs num-byzantine > 0")
            if attack.kind == OMNISCIENT and self.strategy not in OMNISCIENT_STRATEGIES:
                raise ConfigError(
                    f"attack {self.attack!r} is simulated server-side: it needs strategy=robust "
                    "or secure"
                )
        byzantine_clients(self.num_clients, self.num_byzantine, self.seed)  # checks f < n/2
        if self.byzantine_data not in BYZANTINE_DATA:
            raise ConfigError(
                f"unknown byzantine-data {self.byzantine_data!r}: expected one of "
                f"{', '.join(BYZANTINE_DATA)}"
            )
