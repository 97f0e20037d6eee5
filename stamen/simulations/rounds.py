"""The server's round loop: flwr's ``Strategy.start``, able to begin after a checkpoint.

Each round is flwr's: ``configure_train``, ``send_and_receive``, ``aggregate_train``, then
the same for evaluation, then the centralised ``evaluate_fn``. The loop starts at
``first_round`` (1, or the round after a checkpoint) and calls ``round_done`` once a round's
results are all recorded, which is where the run saves its checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from logging import INFO

from flwr.app import ArrayRecord, ConfigRecord, MetricRecord
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy


def run_rounds(
    strategy: Strategy,
    grid: Grid,
    arrays: ArrayRecord,
    num_rounds: int,
    train_config: ConfigRecord,
    evaluate_fn: Callable[[int, ArrayRecord], MetricRecord | None],
    round_done: Callable[[int, ArrayRecord], None],
    first_round: int = 1,
    timeout: float = 3600,
) -> ArrayRecord:
    """Run rounds ``first_round .. num_rounds`` from ``arrays``; return the final arrays.
    A fresh run (``first_round == 1``) first evaluates the initial model (round 0)."""
    if first_round == 1:
        evaluate_fn(0, arrays)
    for server_round in range(first_round, num_rounds + 1):
        log(INFO, "[ROUND %s/%s]", server_round, num_rounds)
        messages = strategy.configure_train(server_round, arrays, train_config, grid)
        replies = grid.send_and_receive(messages, timeout=timeout)
        aggregated, _ = strategy.aggregate_train(server_round, replies)
        arrays = aggregated if aggregated is not None else arrays
        messages = strategy.configure_evaluate(server_round, arrays, ConfigRecord(), grid)
        strategy.aggregate_evaluate(server_round, grid.send_and_receive(messages, timeout=timeout))
        evaluate_fn(server_round, arrays)
        round_done(server_round, arrays)
    return arrays
