"""The strategy registry: a name maps to ``factory(experiment, sampling, partition_of)``.

``sampling`` holds the keyword arguments every flwr strategy takes for client sampling
(``fraction_train``, ``min_available_nodes``, ...), built once from the run config;
``partition_of(node_id)`` tells which data partition a node holds (or None).
"""

from __future__ import annotations

from collections.abc import Callable

from flwr.serverapp.strategy import Strategy

from stamen.experiment import Experiment
from stamen.registry import Registry

STRATEGIES: Registry = Registry("strategy")


def build_strategy(
    experiment: Experiment, partition_of: Callable[[int], int | None] = lambda node: None
) -> Strategy:
    """The strategy named by ``strategy`` with the run's client-sampling settings."""
    sampling = {
        "fraction_train": experiment.fraction_train,
        "fraction_evaluate": experiment.fraction_evaluate,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 1,
        "min_available_nodes": min(experiment.min_available_clients, experiment.num_clients),
    }
    return STRATEGIES.get(experiment.strategy)(experiment, sampling, partition_of)
