"""Flower's own strategies, registered by name (no re-implementation).

``fedavg`` is flwr's FedAvg (McMahan et al., arXiv 1602.05629), ``fedavgm`` its FedAvgM
(Hsu et al., arXiv 1909.06335) and ``fedprox`` its FedProx (Li et al., arXiv 1812.06127),
whose ``proximal-mu`` the ClientApp applies.

flwr's FedAvgM takes its pseudo-gradient against its own last output, recorded once; a
wrapper that sends another model than that output (pruning sends ``m * w``) would feed the
difference into the momentum. ``fedavgm`` takes it against the model each round sends, as
flwr's FedOpt strategies do; unwrapped, both are the same model.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg, FedAvgM, FedProx, Strategy

from stamen.experiment import Experiment
from stamen.strategies.registry import STRATEGIES


@STRATEGIES.register("fedavg")
def fedavg(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> Strategy:
    return FedAvg(**sampling)


class FedAvgMOfSentModel(FedAvgM):
    """FedAvgM whose pseudo-gradient is the sent model minus the aggregate."""

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        self.current_arrays = arrays
        return super().configure_train(server_round, arrays, config, grid)


@STRATEGIES.register("fedavgm")
def fedavgm(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> Strategy:
    return FedAvgMOfSentModel(
        **sampling,
        server_learning_rate=experiment.server_lr,
        server_momentum=experiment.server_momentum,
    )


@STRATEGIES.register("fedprox")
def fedprox(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> Strategy:
    return FedProx(**sampling, proximal_mu=experiment.proximal_mu)
