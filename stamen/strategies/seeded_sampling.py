"""Client sampling that depends only on the run seed and the round.

flwr's strategies sample nodes with Python's global ``random``, which other code in the
ServerApp's process may also draw from (it differs between engines). This wrapper seeds
``random`` from the round's sampling stream (``stamen.seeding``) right before each sampling
call, so the same nodes are sampled on every engine and whatever ran before; runs in
threads of one process take turns (a lock) between seeding and sampling. The train messages
go out in the grid's node order (by partition id on ``PartitionOrderedGrid``), not in
``random.sample``'s order, so that a client's reply has the same row in every round: seeded
bucketing relies on it.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from stamen.seeding import ServerStream, server_seed
from stamen.strategies.wrapper import StrategyWrapper

_RANDOM_LOCK = threading.Lock()  # Python's ``random`` is one per process


class SeededSampling(StrategyWrapper):
    """Runs ``strategy`` with ``random`` reseeded before each round's sampling."""

    def __init__(self, strategy: Strategy, seed: int) -> None:
        super().__init__(strategy)
        self.seed = seed

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        with _RANDOM_LOCK:
            self._reseed(server_round, ServerStream.SAMPLE_TRAIN)
            messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        rank = {node: i for i, node in enumerate(grid.get_node_ids())}
        return sorted(messages, key=lambda m: rank.get(m.metadata.dst_node_id, len(rank)))

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        with _RANDOM_LOCK:
            self._reseed(server_round, ServerStream.SAMPLE_EVALUATE)
            return list(self.strategy.configure_evaluate(server_round, arrays, config, grid))

    def _reseed(self, server_round: int, phase: ServerStream) -> None:
        random.seed(server_seed(self.seed, server_round, phase))
