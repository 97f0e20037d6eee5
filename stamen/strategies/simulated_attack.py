"""The simulated omniscient attack (simulation only): the server crafts the Byzantine clients'
updates from the honest ones (e.g. ALIE, Baruch et al., arXiv 1902.06156; IPM, Xie et al.,
arXiv 1903.03936), for the robust strategy on plaintext updates and for the secure one before
it shares them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from stamen.attacks import OMNISCIENT, OmniscientAttack, byzantine_clients, create_attack
from stamen.errors import RoundSkipped
from stamen.experiment import Experiment


@dataclass(frozen=True)
class SimulatedAttack:
    """An omniscient attack and which partitions it controls."""

    attack: OmniscientAttack
    byzantine: frozenset[int]
    partition_of: Callable[[int], int | None]

    def apply(
        self,
        updates: torch.Tensor,
        node_ids: tuple[int, ...],
        generator: torch.Generator,
        state: Any,
    ) -> tuple[torch.Tensor, Any]:
        """Replace the Byzantine clients' updates (rows of ``updates``, in place) by the
        attack's; returns them and the attack's next state."""
        partitions = [self.partition_of(n) for n in node_ids]
        byzantine = [p in self.byzantine for p in partitions]
        mask = torch.tensor(byzantine, device=updates.device)
        num_byzantine = int(mask.sum())
        if num_byzantine == 0 or num_byzantine == len(node_ids):
            return updates, state
        honest = [
            p if p is not None else n for p, n, b in zip(partitions, node_ids, byzantine) if not b
        ]
        try:
            crafted, state = self.attack.craft(
                updates[~mask], num_byzantine, generator, state, clients=honest
            )
        except ValueError as error:  # e.g. ALIE with one honest reply left after drops
            raise RoundSkipped(f"the simulated attack cannot run on this round: {error}") from None
        updates[mask] = crafted.to(updates.dtype)  # in place: the rows are this round's own
        return updates, state


def simulated_attack_of(
    experiment: Experiment, partition_of: Callable[[int], int | None]
) -> SimulatedAttack | None:
    """The run's omniscient attack and its Byzantine partitions, if it has one."""
    attack = None if experiment.attack == "none" else create_attack(experiment.attack)
    if attack is None or attack.kind != OMNISCIENT:
        return None
    byzantine = byzantine_clients(experiment.num_clients, experiment.num_byzantine, experiment.seed)
    return SimulatedAttack(attack, frozenset(int(p) for p in byzantine), partition_of)
