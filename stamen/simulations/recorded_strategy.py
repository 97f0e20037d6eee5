"""A strategy wrapper that records each round's aggregated client metrics as it ends.

Any flwr strategy keeps its behaviour while its metrics reach ``metrics.csv`` round by round,
with the round's training traffic per client (``bytes-down``, ``bytes-up``) and the clients
the grid dropped (``dropped.csv``).
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import WARNING

from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.common.logger import log
from flwr.serverapp.strategy import Strategy

from stamen.errors import RoundSkipped
from stamen.simulations.ordered_grid import PartitionOrderedGrid
from stamen.simulations.results import RunRecorder
from stamen.strategies.wrapper import StrategyWrapper


class RecordedStrategy(StrategyWrapper):
    """Runs ``strategy`` and writes its aggregated train/evaluate metrics to ``recorder``.

    ``grid`` tells the round's traffic and the clients it dropped (``reply_screen``); a
    round with fewer than ``min_replies`` valid replies, or one the strategy cannot aggregate
    (``RoundSkipped``: e.g. too few replies left for Krum), is not aggregated: the model
    stays, ``skipped = 1`` goes to ``metrics.csv`` and the reason to ``skipped.csv``."""

    def __init__(
        self,
        strategy: Strategy,
        recorder: RunRecorder,
        grid: PartitionOrderedGrid,
        min_replies: int = 1,
    ) -> None:
        super().__init__(strategy)
        self.recorder = recorder
        self.grid = grid
        self.min_replies = min_replies

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        counts = {"replies": len(replies)}
        if 0 < len(replies) < self.min_replies:
            reason = f"{len(replies)} valid replies, fewer than min-replies = {self.min_replies}"
            self._skip(server_round, reason)
            replies, counts["skipped"] = [], 1
        try:
            arrays, metrics = self.strategy.aggregate_train(server_round, replies)
        except RoundSkipped as skipped:
            self._skip(server_round, str(skipped))
            arrays, metrics, counts["skipped"] = None, None, 1
        # after aggregation: a strategy's later message phase (PowerSGD's) counts too
        dropped = self.grid.take_dropped()
        partition = self.grid.partition_id
        self.recorder.add_dropped(
            server_round, [(d.node_id, partition(d.node_id), d.reason) for d in dropped]
        )
        counts.update({"failures": len(dropped), **self.grid.traffic.take()})
        self.recorder.add(server_round, "clients", {**(metrics or {}), **counts})
        return arrays, metrics

    def _skip(self, server_round: int, reason: str) -> None:
        log(WARNING, "round %d not aggregated, the model stays: %s", server_round, reason)
        self.recorder.add_skipped(server_round, reason)

    def aggregate_evaluate(
        self, server_round: int, replies: Iterable[Message]
    ) -> MetricRecord | None:
        metrics = self.strategy.aggregate_evaluate(server_round, replies)
        if metrics:
            self.recorder.add(server_round, "clients", {f"eval-{k}": v for k, v in metrics.items()})
        return metrics
