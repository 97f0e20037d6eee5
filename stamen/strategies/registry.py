"""The strategy registry: a name maps to ``factory(experiment, sampling) -> Strategy``.

``sampling`` holds the keyword arguments every flwr strategy takes for client sampling
(``fraction_train``, ``min_available_nodes``, ...), built once from the run config.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flwr.serverapp.strategy import Strategy

from stamen.registry import Registry

if TYPE_CHECKING:
    from stamen.simulations.config import Experiment

STRATEGIES: Registry = Registry("strategy")


def build_strategy(experiment: Experiment) -> Strategy:
    """The strategy named by ``strategy`` with the run's client-sampling settings."""
    sampling = {
        "fraction_train": experiment.fraction_train,
        "fraction_evaluate": experiment.fraction_evaluate,
        "min_train_nodes": 1,
        "min_evaluate_nodes": 1,
        "min_available_nodes": min(experiment.min_available_clients, experiment.num_clients),
    }
    return STRATEGIES.get(experiment.strategy)(experiment, sampling)
