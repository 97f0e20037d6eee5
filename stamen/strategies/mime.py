"""Mime and MimeLite (Karimireddy, Kale, Mohri, Reddi, Stich, Suresh, arXiv 2008.03606).

The server keeps the model ``x`` and the base optimizer's state ``s`` (``base_optimizers``)
in one ``MimeState``. A round ``t``:

1. ``configure_train`` samples the round's clients ``S`` (FedAvg's sampling). Mime only: it
   first runs a gradient phase on ``S`` at ``x`` (messages ``"query.gradient"``, answered
   with ``grad f_i(x)``) and takes ``c`` = their example-weighted mean. Mime therefore has two
   message phases per round; MimeLite has one.
2. The train messages carry ``x`` (``"arrays"``), ``s`` (``"optimizer-state"``, empty until
   the state exists: clients then start from the initial state) and, for Mime, ``c``
   (``"control-variate"``); their config names the base optimizer. Clients take the local
   steps with ``s`` frozen (``clients/mime_training.py``).
3. ``aggregate_train``: ``x <- x + server_lr * (weighted mean of y_i - x)`` over the valid
   replies (example weights), and ``s <- V(g, s)`` with ``g`` the mean full-batch gradient
   at ``x``: ``c`` for Mime, the ``grad f_i(x)`` that MimeLite's clients send back with
   ``y_i`` (under ``"gradient"``). The client updates never enter ``s``.

A reply that fails the reply checks (``messages/replies.py``: a model or gradient of the wrong
shape, NaN/Inf, missing records or ``num-examples``) is excluded and counted (``excluded``;
``excluded-gradients`` for Mime's gradient phase, where a failed or missing reply counts too).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from flwr.app import (
    ArrayRecord,
    ConfigRecord,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from torch import Tensor

from stamen.algorithms.mime.base_optimizers import OptimizerState, create_base_optimizer
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout, tensors_record
from stamen.messages.keys import (
    ARRAYS,
    BASE_OPTIMIZER,
    CONFIG,
    CONTROL_KEY,
    GRADIENT_BATCHES,
    GRADIENT_KEY,
    GRADIENT_PHASE,
    MIME_TRAIN,
    SERVER_ROUND,
    STATE_KEY,
)
from stamen.messages.replies import (
    Refused,
    answered,
    arrays_of,
    examples_of,
    stack_updates,
    vector_of,
)
from stamen.strategies.registry import STRATEGIES


@dataclass(frozen=True)
class MimeState:
    """Everything the server carries from one round to the next (checkpointable)."""

    arrays: ArrayRecord | None = None  # x, the model sent this round
    optimizer_state: OptimizerState | None = None  # s; None until the first gradients
    control_variate: Tensor | None = None  # c at x (Mime), None for MimeLite
    excluded_gradients: int = 0  # malformed replies of this round's gradient phase (Mime)


class MimeStrategy(FedAvg):
    """FedAvg's sampling; Mime's messages, model average and server-state update."""

    def __init__(
        self,
        base_optimizer: str,
        *,
        lite: bool,
        server_lr: float = 1.0,
        gradient_batches: int = 0,
        timeout: float = 3600,
        **sampling: Any,
    ) -> None:
        super().__init__(**sampling)
        self.base_optimizer = base_optimizer
        self.optimizer = create_base_optimizer(base_optimizer)
        self.lite = lite
        self.server_lr = server_lr
        self.gradient_batches = gradient_batches
        self.timeout = timeout
        self.state = MimeState()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        sampled = list(super().configure_train(server_round, arrays, config, grid))
        node_ids = [message.metadata.dst_node_id for message in sampled]
        config = ConfigRecord(
            {
                **config,
                SERVER_ROUND: server_round,
                BASE_OPTIMIZER: self.base_optimizer,
                GRADIENT_BATCHES: self.gradient_batches,
            }
        )
        control, excluded = None, 0
        if not self.lite and node_ids:
            control, excluded = self._gradient_phase(arrays, config, node_ids, grid)
        self.state = replace(
            self.state, arrays=arrays, control_variate=control, excluded_gradients=excluded
        )
        record = RecordDict(
            {ARRAYS: arrays, CONFIG: config, STATE_KEY: tensors_record(self.state.optimizer_state)}
        )
        if control is not None:
            record[CONTROL_KEY] = tensors_record({CONTROL_KEY: control})
        return self._construct_messages(record, node_ids, MIME_TRAIN)

    def _gradient_phase(
        self, arrays: ArrayRecord, config: ConfigRecord, node_ids: list[int], grid: Grid
    ) -> tuple[Tensor | None, int]:
        """Mime's ``c`` (the example-weighted mean of the sampled nodes' ``grad f_i(x)``) and
        the number of replies excluded."""
        record = RecordDict({ARRAYS: arrays, CONFIG: config})
        messages = self._construct_messages(record, node_ids, GRADIENT_PHASE)
        found = self._gradients(answered(grid.send_and_receive(messages, timeout=self.timeout)))
        valid = [g for g in found if g is not None]
        return _weighted_mean(valid), len(node_ids) - len(valid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = answered(replies)
        layout = ArrayLayout.of(self.state.arrays)
        reference = layout.flatten(self.state.arrays)
        stacked = stack_updates(replies, reference, layout, key=ARRAYS)
        rows = list(range(len(stacked.node_ids)))
        gradients: list[tuple[Tensor, float]] = []
        if self.lite:
            by_node = {reply.metadata.src_node_id: reply for reply in replies}
            found = self._gradients(by_node[n] for n in stacked.node_ids)
            rows = [i for i, g in enumerate(found) if g is not None]
            gradients = [g for g in found if g is not None]
        excluded = {
            "excluded": stacked.excluded + len(stacked.node_ids) - len(rows),
            "excluded-gradients": self.state.excluded_gradients,
        }
        if not rows:
            return None, MetricRecord(excluded)
        weights = torch.tensor([stacked.num_examples[i] for i in rows])
        step = (weights / weights.sum()) @ stacked.updates[rows]
        arrays = layout.unflatten(reference + self.server_lr * step, stacked.integers)
        gradient = _weighted_mean(gradients) if self.lite else self.state.control_variate
        optimizer_state = self.state.optimizer_state
        if gradient is not None:
            start = optimizer_state or self.optimizer.init_state(gradient)
            optimizer_state = self.optimizer.update_state(gradient, start)
        self.state = replace(self.state, arrays=arrays, optimizer_state=optimizer_state)
        kept = {stacked.node_ids[i] for i in rows}
        contents = [r.content for r in replies if r.metadata.src_node_id in kept]
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        metrics.update(excluded)
        return arrays, metrics

    def _gradients(self, replies: Iterable[Message]) -> list[tuple[Tensor, float] | None]:
        """Each reply's ``(grad f_i(x), examples)``, or None where missing or malformed.

        All must have the parameter count of the server state, or, before the state exists,
        that of the first valid one."""
        state = self.state.optimizer_state
        size = None if state is None else next(v for v in state.values() if v.dim() == 1).numel()
        found = []
        for reply in replies:
            gradient = _valid_gradient(reply, size)
            size = size if gradient is None else gradient[0].numel()
            found.append(gradient)
        return found


def _valid_gradient(reply: Message, size: int | None) -> tuple[Tensor, float] | None:
    """A reply's ``grad f_i(x)`` and example count, or None if missing or malformed."""
    try:
        return vector_of(arrays_of(reply, GRADIENT_KEY), GRADIENT_KEY, size), examples_of(reply)
    except Refused:
        return None


def _weighted_mean(gradients: list[tuple[Tensor, float]]) -> Tensor | None:
    if not gradients:
        return None
    weights = torch.tensor([w for _, w in gradients])
    return (weights / weights.sum()) @ torch.stack([g for g, _ in gradients])


def _factory(lite: bool):
    def build(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> MimeStrategy:
        return MimeStrategy(
            experiment.base_optimizer,
            lite=lite,
            server_lr=experiment.server_lr,
            gradient_batches=experiment.gradient_batches,
            timeout=experiment.round_timeout,
            **sampling,
        )

    return build


STRATEGIES.register("mime", _factory(lite=False))
STRATEGIES.register("mimelite", _factory(lite=True))
