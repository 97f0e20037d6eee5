"""Pruning around any strategy (``pruning``): the strategy trains the pruned model ``m * w``,
the server keeps the dense weights ``w`` and the masks (``stamen.algorithms.pruning``).

Each round the strategy is given the pruned model; its train messages carry it sparse (kept
values and packed masks, ``"pruned"``). After the strategy's aggregation the round's step
(its new model minus the pruned model it sent) goes to the dense weights: all of them with
feedback (DPF), the kept ones only without (gradual, one-shot). When the method says so
(``Pruning.target``), the masks are recomputed from the dense weights by magnitude. The
model returned (evaluated, checkpointed, saved) is the pruned one; ``w`` and the masks are
the wrapper's ``state``. Replies' models are checked against the model's layout here (the
grid cannot: the message it saw carried no ``"arrays"``); malformed ones are excluded and
counted (``excluded-pruned``). ``sparsity`` in ``metrics.csv`` is the pruned fraction of the
prunable weights of the model sent in the round.
"""

from __future__ import annotations

from collections.abc import Iterable
from copy import copy
from dataclasses import dataclass, field
from logging import WARNING

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from stamen.algorithms.compression import split
from stamen.algorithms.pruning import Pruning, magnitude_masks, sparsity_of
from stamen.algorithms.pruning.settings import pruning_of
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout, array_values, model_bytes
from stamen.messages.keys import ARRAYS, CONFIG, MODEL_BYTES, PRUNED
from stamen.messages.pruned import pruned_record
from stamen.messages.replies import Refused, model_of, require_finite
from stamen.strategies.wrapper import StrategyWrapper


@dataclass(frozen=True)
class PruningState:
    """The dense weights (floating-point tensors, flattened) and the masks (checkpointed)."""

    dense: torch.Tensor | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)


class PrunedModel(StrategyWrapper):
    """Runs ``strategy`` on the pruned model; keeps the dense weights and the masks."""

    def __init__(self, strategy: Strategy, pruning: Pruning, num_rounds: int) -> None:
        super().__init__(strategy)
        self.pruning, self.num_rounds = pruning, num_rounds
        self.state = PruningState()
        self.sent: ArrayRecord | None = None

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        layout = ArrayLayout.of(arrays)
        if self.state.dense is None:  # the first round: the initial model, dense
            self.state = PruningState(layout.flatten(arrays), {})
        pruned = self._pruned(layout, self.state.dense, arrays)
        self.sent = pruned
        messages = list(self.strategy.configure_train(server_round, pruned, config, grid))
        masks = {name: mask.numpy() for name, mask in self.state.masks.items()}
        declared = {MODEL_BYTES: model_bytes(pruned)}  # the replies' allowance
        out = []
        for message in messages:
            if ARRAYS not in message.content.array_records:
                out.append(message)
                continue
            content = dict(message.content.items())
            content[PRUNED] = pruned_record(content.pop(ARRAYS), masks)
            content[CONFIG] = ConfigRecord({**content.get(CONFIG, ConfigRecord()), **declared})
            sparse = copy(message)
            sparse.content = RecordDict(content)
            out.append(sparse)
        return out

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        layout = ArrayLayout.of(self.sent)
        kept, excluded = [], 0
        for reply in replies:
            try:
                kept.append(_checked(reply, layout))
            except Refused as refused:
                log(WARNING, "reply of node %s excluded: %s", reply.metadata.src_node_id, refused)
                excluded += 1
        arrays, metrics = self.strategy.aggregate_train(server_round, kept)
        metrics = MetricRecord({**(metrics or {}), "sparsity": sparsity_of(self.state.masks)})
        if excluded:
            metrics["excluded-pruned"] = excluded
        if arrays is None:
            return None, metrics
        step = layout.flatten(arrays) - layout.flatten(self.sent)
        dense = self.state.dense + step
        if not self.pruning.feedback:
            dense = self._masked(layout, dense, self.state.masks)
        masks = self.state.masks
        target = self.pruning.target(server_round, self.num_rounds)
        if target is not None:
            weights = {name: x for name, _, x in split(dense, layout.float_tensors)}
            masks = magnitude_masks(weights, target, self.pruning.structured)
        self.state = PruningState(dense, masks)
        return self._pruned(layout, dense, arrays), metrics

    def _pruned(self, layout: ArrayLayout, dense: torch.Tensor, integers: ArrayRecord):
        return layout.unflatten(self._masked(layout, dense, self.state.masks), integers)

    @staticmethod
    def _masked(layout: ArrayLayout, dense: torch.Tensor, masks: dict[str, torch.Tensor]):
        masked = dense.clone()
        for name, _, x in split(masked, layout.float_tensors):
            if name in masks:
                x.mul_(masks[name])
        return masked


def _checked(reply: Message, layout: ArrayLayout) -> Message:
    """``reply`` with its model under the layout's keys; ``Refused`` if malformed."""
    if reply.has_error() or ARRAYS not in reply.content.array_records:
        return reply  # not a model (e.g. a compressed update): checked by the inner wrapper
    model = model_of(reply.content[ARRAYS], layout)
    for key in layout.float_keys:
        require_finite(array_values(model[key]), key)
    checked = copy(reply)
    checked.content = RecordDict({**dict(reply.content.items()), ARRAYS: model})
    return checked


def with_pruning(strategy: Strategy, experiment: Experiment) -> Strategy:
    """``strategy``, wrapped when the run prunes its model."""
    pruning = pruning_of(experiment)
    if pruning is None:
        return strategy
    return PrunedModel(strategy, pruning, experiment.num_server_rounds)
