"""A strategy wrapper that records each round's aggregated client metrics as it ends.

Any flwr strategy keeps its behaviour while its metrics reach ``metrics.csv`` round by round,
with the round's training traffic per client (``bytes-down``, ``bytes-up``) when given.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import Strategy

from stamen.simulations.results import RunRecorder
from stamen.simulations.traffic import Traffic
from stamen.strategies.wrapper import StrategyWrapper


class RecordedStrategy(StrategyWrapper):
    """Runs ``strategy`` and writes its aggregated train/evaluate metrics to ``recorder``."""

    def __init__(
        self, strategy: Strategy, recorder: RunRecorder, traffic: Traffic | None = None
    ) -> None:
        super().__init__(strategy)
        self.recorder = recorder
        self.traffic = traffic

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        failed = sum(reply.has_error() for reply in replies)
        traffic = self.traffic.take() if self.traffic is not None else {}
        self.recorder.add(
            server_round,
            "clients",
            {**(metrics or {}), "replies": len(replies) - failed, "failures": failed, **traffic},
        )
        return arrays, metrics

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        metrics = self.strategy.aggregate_evaluate(server_round, replies)
        if metrics:
            self.recorder.add(server_round, "clients", {f"eval-{k}": v for k, v in metrics.items()})
        return metrics
