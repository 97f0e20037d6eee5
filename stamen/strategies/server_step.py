"""What the Byzantine-robust strategies share (``robust``, and ``secure`` with S2's rule): the
server's state, its step on the round's aggregate and the clients' metrics.

The server step is ``x <- x + lr * v`` with ``v`` the aggregate, or with server momentum
``v <- momentum * v + aggregate`` (FedAvgM, Hsu, Qi & Brown, arXiv 1909.06335).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from flwr.app import ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from stamen.messages.arrays import ArrayLayout


@dataclass(frozen=True)
class RobustState:
    """Everything a robust server carries from one round to the next (checkpointed under
    this name): the round's model, the rule's state (e.g. the CClip centre), the momentum
    buffer and the simulated attack's state."""

    arrays: ArrayRecord | None = None
    rule_state: Any = None
    momentum: torch.Tensor | None = None
    attack_state: Any = None


@dataclass(frozen=True)
class ServerStep:
    """The server's optimizer: learning rate and momentum (0: none)."""

    lr: float = 1.0
    momentum: float = 0.0

    def apply(
        self,
        state: RobustState,
        aggregate: torch.Tensor,
        layout: ArrayLayout,
        reference: torch.Tensor,
        integers: ArrayRecord,
        rule_state: Any,
        attack_state: Any,
    ) -> RobustState:
        """The state after the step from ``reference`` (the flattened ``state.arrays``), with
        the integer arrays of ``integers``."""
        step = aggregate
        if self.momentum and state.momentum is not None:
            step = self.momentum * state.momentum + aggregate
        arrays = layout.unflatten(reference + self.lr * step, integers)
        return RobustState(arrays, rule_state, step if self.momentum else None, attack_state)


def client_metrics(strategy: FedAvg, replies: Iterable[Message], kept: set[int]) -> MetricRecord:
    """The strategy's aggregate of the train metrics of the clients ``kept`` (node ids)."""
    contents = [reply.content for reply in replies if reply.metadata.src_node_id in kept]
    return strategy.train_metrics_aggr_fn(contents, strategy.weighted_by_key)
