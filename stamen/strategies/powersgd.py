"""Two-phase PowerSGD for FL: FedAvg whose mean update travels as rank-r factors and is
assembled from sums only (Vogels, Karimireddy & Jaggi, NeurIPS 2019, arXiv 1905.13553).

A round ``t`` (``strategy = "powersgd"``, ``powersgd-rank = r``):

1. ``configure_train``: FedAvg's sampling; the train messages (``"train.powersgd"``) carry
   the model and, for each matrix whose factors are smaller than itself (a tensor of shape
   (m, ...) is the matrix (m, n)), ``Q`` (n, r): last round's mean ``Q`` (warm start), or
   normal draws of the round's shared stream.
2. Clients train and reply ``P_i = M_i Q`` (m, r) and the other tensors whole
   (``clients/powersgd_step.py``).
3. ``aggregate_train``: ``P = orthonormal(sum_i w_i P_i)`` (``w_i``: example weights); the
   second phase (``"query.powersgd"``) sends ``P`` to the nodes whose replies were valid and
   gets ``Q_i = M_i^T P``; ``Q = sum_i w_i Q_i`` (over the nodes that answered both). The
   mean update is ``P Q^T`` per matrix (exactly PowerSGD's rank-r step on the example-weighted
   mean of the clients' ``M_i``), the weighted mean of the other tensors, and
   ``x <- x + server_lr * update``.

Both phases' traffic counts towards the round. Replies that are malformed (other parts,
shapes or dtypes, NaN) are excluded and counted (``excluded``, ``excluded-second-phase``); a
round without valid second-phase replies is skipped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from torch import Tensor

from stamen.algorithms.compression.powersgd import PowerSGD, orthonormal
from stamen.errors import RoundSkipped
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout, tensors_record
from stamen.messages.compressed import read_compressed
from stamen.messages.keys import (
    ARRAYS,
    CONFIG,
    FACTORS,
    POWERSGD_PHASE,
    POWERSGD_TRAIN,
    SERVER_ROUND,
)
from stamen.messages.replies import (
    Refused,
    answered,
    arrays_as,
    arrays_of,
    examples_of,
    integer_arrays,
    require_finite,
)
from stamen.seeding import shared_generator
from stamen.strategies.registry import STRATEGIES

_INITIAL_Q = 2  # index of the shared stream of the initial Q (after the tensor's)


@dataclass(frozen=True)
class PowerSGDState:
    """What the server carries between rounds (checkpointed): the model sent this round and
    the mean ``Q`` of each matrix (warm start)."""

    arrays: ArrayRecord | None = None
    q: dict[str, Tensor] = field(default_factory=dict)


class PowerSGDStrategy(FedAvg):
    """FedAvg's sampling; PowerSGD's two message phases and low-rank mean update."""

    def __init__(
        self, rank: int, *, seed: int, server_lr: float = 1.0, timeout: float = 3600, **sampling
    ) -> None:
        super().__init__(**sampling)
        self.low_rank = PowerSGD(rank)
        self.seed, self.server_lr, self.timeout = seed, server_lr, timeout
        self.state = PowerSGDState()
        self.grid: Grid | None = None
        self.q_sent: dict[str, Tensor] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        sampled = list(super().configure_train(server_round, arrays, config, grid))
        node_ids = [message.metadata.dst_node_id for message in sampled]
        self.grid = grid
        self.state = replace(self.state, arrays=arrays)
        self.q_sent = self._warm_q(server_round, ArrayLayout.of(arrays))
        config = ConfigRecord({**config, SERVER_ROUND: server_round})
        record = RecordDict({ARRAYS: arrays, CONFIG: config, FACTORS: tensors_record(self.q_sent)})
        return self._construct_messages(record, node_ids, POWERSGD_TRAIN)

    def _warm_q(self, server_round: int, layout: ArrayLayout) -> dict[str, Tensor]:
        """Last round's mean ``Q`` of each matrix, else the round's shared normal draws."""
        q = {}
        for index, (name, shape) in enumerate(layout.float_tensors):
            factors = self.low_rank.factors(shape)
            if factors is None:
                continue
            _, n, rank = factors
            previous = self.state.q.get(name)
            if previous is not None and tuple(previous.shape) == (n, rank):
                q[name] = previous
            else:
                generator = shared_generator(self.seed, server_round, index, _INITIAL_Q)
                q[name] = torch.randn(n, rank, generator=generator)
        return q

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = answered(replies)
        layout = ArrayLayout.of(self.state.arrays)
        first = self._first_phase(replies, layout)
        excluded = len(replies) - len(first)
        if not first:
            return None, MetricRecord({"excluded": excluded})
        weights = _normalised([reply.examples for reply in first])
        p = {name: orthonormal(_sum(weights, first, f"{name}/p")) for name in self.q_sent}
        second = self._second_phase(server_round, p, [reply.node for reply in first])
        if not second:
            raise RoundSkipped("no valid reply to PowerSGD's second phase")
        answering = [reply for reply in first if reply.node in second]
        second_weights = _normalised([reply.examples for reply in answering])
        q = {
            name: sum(w * second[r.node][f"{name}/q"] for w, r in zip(second_weights, answering))
            for name in self.q_sent
        }
        pieces = [
            (p[name] @ q[name].T).reshape(-1)
            if name in p
            else _sum(weights, first, f"{name}/values")
            for name, _ in layout.float_tensors
        ]
        integers = integer_arrays([reply.record for reply in first], layout)
        step = self.server_lr * torch.cat(pieces)
        arrays = layout.unflatten(layout.flatten(self.state.arrays) + step, integers)
        self.state = PowerSGDState(arrays, q)
        kept = {reply.node for reply in first}
        contents = [r.content for r in replies if r.metadata.src_node_id in kept]
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        metrics.update({"excluded": excluded, "excluded-second-phase": len(first) - len(second)})
        return arrays, metrics

    def _first_phase(self, replies: list[Message], layout: ArrayLayout) -> list[FirstReply]:
        """The valid replies of the first phase, in order."""
        expected = {}
        for name, shape in layout.float_tensors:
            if name in self.q_sent:
                expected[f"{name}/p"] = ((shape[0], self.q_sent[name].shape[1]), torch.float32)
            else:
                expected[f"{name}/values"] = ((int(torch.Size(shape).numel()),), torch.float32)
        valid = []
        for reply in replies:
            try:
                record = arrays_of(reply, FACTORS)
                parts = _finite(read_compressed(record, expected, layout)[0])
                valid.append(
                    FirstReply(reply.metadata.src_node_id, parts, examples_of(reply), record)
                )
            except Refused:
                continue
        return valid

    def _second_phase(
        self, server_round: int, p: dict[str, Tensor], node_ids: list[int]
    ) -> dict[int, dict[str, Tensor]]:
        """Each node's valid ``Q_i`` per matrix, by node, in the order of ``node_ids``."""
        config = ConfigRecord({SERVER_ROUND: server_round})
        record = RecordDict({FACTORS: tensors_record(p), CONFIG: config})
        messages = self._construct_messages(record, node_ids, POWERSGD_PHASE)
        replies = answered(self.grid.send_and_receive(messages, timeout=self.timeout))
        expected = {
            f"{name}/q": ((q.shape[0], q.shape[1]), q.numpy().dtype)
            for name, q in self.q_sent.items()
        }
        found = {}
        for reply in replies:
            try:
                values = arrays_as(arrays_of(reply, FACTORS), expected)
                parts = {key: torch.from_numpy(value.copy()) for key, value in values.items()}
                found[reply.metadata.src_node_id] = _finite(parts)
            except Refused:
                continue
        return {node: found[node] for node in node_ids if node in found}


@dataclass(frozen=True)
class FirstReply:
    """A valid first-phase reply: its node, parts (``P_i`` per matrix, the other tensors
    whole), example count and record (for the integer arrays)."""

    node: int
    parts: dict[str, Tensor]
    examples: float
    record: ArrayRecord


def _finite(parts: dict[str, Tensor]) -> dict[str, Tensor]:
    """``parts``, if every value is finite (``Refused`` otherwise)."""
    for key, value in parts.items():
        require_finite(value, key)
    return parts


def _sum(weights: list[float], replies: list[FirstReply], key: str) -> Tensor:
    return sum(w * reply.parts[key] for w, reply in zip(weights, replies))


def _normalised(weights: list[float]) -> list[float]:
    total = sum(weights)
    return [w / total for w in weights]


@STRATEGIES.register("powersgd")
def powersgd(
    experiment: Experiment, sampling: dict[str, Any], partition_of: Any
) -> PowerSGDStrategy:
    """``strategy = "powersgd"``: two-phase PowerSGD at rank ``powersgd-rank``."""
    return PowerSGDStrategy(
        experiment.powersgd_rank,
        seed=experiment.seed,
        server_lr=experiment.server_lr,
        timeout=experiment.round_timeout,
        **sampling,
    )
