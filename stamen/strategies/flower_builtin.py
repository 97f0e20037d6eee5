"""Flower's own strategies, registered by name (no re-implementation).

``fedavg`` is flwr's FedAvg (McMahan et al., arXiv 1602.05629), ``fedavgm`` its FedAvgM
(Hsu et al., arXiv 1909.06335) and ``fedprox`` its FedProx (Li et al., arXiv 1812.06127),
whose ``proximal-mu`` the ClientApp applies.
"""

from __future__ import annotations

from typing import Any

from flwr.serverapp.strategy import FedAvg, FedAvgM, FedProx, Strategy

from stamen.experiment import Experiment
from stamen.strategies.registry import STRATEGIES


@STRATEGIES.register("fedavg")
def fedavg(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> Strategy:
    return FedAvg(**sampling)


@STRATEGIES.register("fedavgm")
def fedavgm(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> Strategy:
    return FedAvgM(
        **sampling,
        server_learning_rate=experiment.server_lr,
        server_momentum=experiment.server_momentum,
    )


@STRATEGIES.register("fedprox")
def fedprox(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> Strategy:
    return FedProx(**sampling, proximal_mu=experiment.proximal_mu)
