"""A strategy wrapper that records each round's aggregated client metrics as it ends.

It delegates every method to the wrapped strategy (as flwr's DP wrappers do), so any flwr
strategy keeps its behaviour while its metrics reach ``metrics.csv`` round by round.
"""

from __future__ import annotations

from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from stamen.simulations.results import RunRecorder


class RecordedStrategy(Strategy):
    """Runs ``strategy`` and writes its aggregated train/evaluate metrics to ``recorder``."""

    def __init__(self, strategy: Strategy, recorder: RunRecorder) -> None:
        self.strategy = strategy
        self.recorder = recorder

    def summary(self) -> None:
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        failed = sum(reply.has_error() for reply in replies)
        self.recorder.add(
            server_round,
            "clients",
            {**(metrics or {}), "replies": len(replies) - failed, "failures": failed},
        )
        return arrays, metrics

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        return self.strategy.configure_evaluate(server_round, arrays, config, grid)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        metrics = self.strategy.aggregate_evaluate(server_round, replies)
        if metrics:
            self.recorder.add(
                server_round, "clients", {f"eval-{k}": v for k, v in metrics.items()}
            )
        return metrics
