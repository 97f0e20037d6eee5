"""Client-side attacks inside the ClientApp: a Byzantine client poisons its labels and update.

Which partitions are Byzantine comes from the run seed (``stamen.attacks.byzantine_clients``),
so it is the same on every engine; in a deployment a node is also marked Byzantine by its
node config (``attack = "sign-flip"``). These attacks run where the client runs, also on a real
edge device; omniscient attacks are simulated by the server instead.
"""

from __future__ import annotations

import functools

from stamen.attacks import CLIENT, ClientAttack, byzantine_clients, create_attack
from stamen.attacks.registry import ATTACKS
from stamen.errors import ConfigError
from stamen.experiment import Experiment


def client_attack(
    experiment: Experiment, partition_id: int, node_attack: str | None = None
) -> ClientAttack | None:
    """The client-side attack this partition runs, or None if it is honest.

    ``node_attack`` is the node config's ``attack`` (a deployment's red-team node): it marks
    this node Byzantine whatever the run config says. Only client-side attacks exist on a
    real node; an omniscient one is refused."""
    if node_attack:
        attack = create_attack(node_attack)
        if attack.kind != CLIENT:
            raise ConfigError(
                f"node attack {node_attack!r} is omniscient (server-simulated); a node can run "
                f"client attacks only: {', '.join(client_attack_names())}"
            )
        return attack
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


def client_attack_names() -> list[str]:
    return [name for name in ATTACKS.names() if create_attack(name).kind == CLIENT]
