"""Client-side attacks inside the ClientApp: a Byzantine client poisons its labels and update.

Which partitions are Byzantine comes from the run seed (``stamen.attacks.byzantine_clients``),
so it is the same on every engine. These attacks run where the client runs, also on a real
edge device; omniscient attacks are simulated by the server instead.
"""

from __future__ import annotations

import functools

from stamen.attacks import CLIENT, ClientAttack, byzantine_clients, create_attack
from stamen.simulations.config import Experiment


def client_attack(experiment: Experiment, partition_id: int) -> ClientAttack | None:
    """The client-side attack this partition runs, or None if it is honest."""
    if experiment.attack == "none" or experiment.num_byzantine == 0:
        return None
    attack = create_attack(experiment.attack)
    if attack.kind != CLIENT or partition_id not in _byzantine(experiment):
        return None
    return attack


@functools.lru_cache(maxsize=8)
def _byzantine(experiment: Experiment) -> frozenset[int]:
    chosen = byzantine_clients(experiment.num_clients, experiment.num_byzantine, experiment.seed)
    return frozenset(int(p) for p in chosen)
