"""The simulated omniscient attack (simulation only): the server crafts the Byzantine clients'
updates from the honest ones (e.g. ALIE, Baruch et al., arXiv 1902.06156; IPM, Xie et al.,
arXiv 1903.03936), for the robust strategy on plaintext updates and for the secure one before
it shares them.

When the run compresses the uplink, a Byzantine client is bound to the wire format like an
honest one: each crafted row is what its payload decompresses to, ``C(crafted)`` under the
round's shared coordinates and the client's own stream (no error feedback: the attacker
crafts anew every round)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from stamen.algorithms.compression import Compression, RoundDraws, Tensors
from stamen.algorithms.compression.settings import uplink_of
from stamen.attacks import OMNISCIENT, OmniscientAttack, byzantine_clients, create_attack
from stamen.errors import RoundSkipped
from stamen.experiment import Experiment

UplinkOf = Callable[[int], Compression | None]  # the uplink's compression in a round


def dense(server_round: int) -> None:
    """No compression in any round."""
    return None


@dataclass(frozen=True)
class SimulatedAttack:
    """An omniscient attack and which partitions it controls."""

    attack: OmniscientAttack
    byzantine: frozenset[int]
    partition_of: Callable[[int], int | None]
    seed: int = 0
    uplink_of: UplinkOf = dense

    def apply(
        self,
        updates: torch.Tensor,
        node_ids: tuple[int, ...],
        generator: torch.Generator,
        state: Any,
        *,
        server_round: int,
        tensors: Tensors,
    ) -> tuple[torch.Tensor, Any]:
        """Replace the Byzantine clients' updates (rows of ``updates``, in place) by the
        attack's, as the round's uplink delivers them; returns them and the attack's next
        state."""
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
        compression = self.uplink_of(server_round)
        if compression is not None:
            attackers = [int(p) for p, b in zip(partitions, byzantine) if b and p is not None]
            crafted = torch.stack(
                [
                    self._delivered(compression, row, server_round, tensors, partition)
                    for row, partition in zip(crafted, attackers)
                ]
            ).to(updates.device)
        updates[mask] = crafted.to(updates.dtype)  # in place: the rows are this round's own
        return updates, state

    def _delivered(
        self,
        compression: Compression,
        row: torch.Tensor,
        server_round: int,
        tensors: Tensors,
        partition: int,
    ) -> torch.Tensor:
        """``row`` compressed as client ``partition`` would and decompressed."""
        draws = RoundDraws.of_client(self.seed, server_round, partition)
        payload, _ = compression.compress(row, tensors, draws, {})
        return compression.decompress(payload, tensors, draws)


def simulated_attack_of(
    experiment: Experiment, partition_of: Callable[[int], int | None]
) -> SimulatedAttack | None:
    """The run's omniscient attack and its Byzantine partitions, if it has one."""
    attack = None if experiment.attack == "none" else create_attack(experiment.attack)
    if attack is None or attack.kind != OMNISCIENT:
        return None
    byzantine = byzantine_clients(experiment.num_clients, experiment.num_byzantine, experiment.seed)
    return SimulatedAttack(
        attack,
        frozenset(int(p) for p in byzantine),
        partition_of,
        experiment.seed,
        functools.partial(uplink_of, experiment),
    )
