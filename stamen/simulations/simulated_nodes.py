"""What a simulation engine sets for each of its virtual nodes (``clients.node_settings``).

A simulated node belongs to the user who runs the simulation, so the engine may decide for
it what a real device's operator decides in its node config: the CA that certifies S2's key
(the run's own, made by ``secure_services``), and, with an omniscient attack, that honest
nodes send the simulated attacker their plaintext update.
"""

from __future__ import annotations

from pathlib import Path

from stamen.attacks import OMNISCIENT, create_attack
from stamen.clients.node_settings import SECURE_CA, SIMULATION_ORACLE, environment_variable
from stamen.experiment import Experiment
from stamen.simulations.secure_services import certificates_folder


def simulated_node_config(experiment: Experiment, out_dir: Path) -> dict[str, str]:
    """The node-config entries every virtual node of ``experiment`` gets."""
    if experiment.strategy != "secure":
        return {}
    omniscient = experiment.attack != "none" and create_attack(experiment.attack).kind == OMNISCIENT
    return {
        SECURE_CA: str(certificates_folder(experiment, out_dir) / "ca.pem"),
        SIMULATION_ORACLE: "true" if omniscient else "false",
    }


def simulated_node_environment(experiment: Experiment, out_dir: Path) -> dict[str, str]:
    """The same as environment variables, for Flower's Ray engine (whose virtual nodes have
    no node config of their own)."""
    config = simulated_node_config(experiment, out_dir)
    return {environment_variable(key): value for key, value in config.items()}
