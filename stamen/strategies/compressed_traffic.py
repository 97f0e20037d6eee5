"""The server's side of communication compression, around any strategy: the strategy sends
and receives whole models, the wire carries compressed ones.

**Uplink** (``uplink``): a reply carrying ``"compressed"`` must hold exactly the parts the
compressor sends for the model the node was sent (``stamen.messages.compressed``); it is
decompressed (the shared coordinates drawn as the clients drew them) into the model
``sent + update`` before the strategy sees it, so every strategy (flwr's FedAvg, robust
aggregation, FedDF) aggregates it unchanged and compression x robust aggregation is a grid
axis. A reply that fails is excluded, logged and counted (``excluded-compressed``); replies
with a model pass (a ClientApp that does not compress still takes part), checked here when
the message carried a compressed change (the grid saw no model to check them against).

**Downlink** (``downlink``): the server keeps the model the clients hold, ``x_hat``. Each
round it compresses the change of its model ``x_t - x_{t-1}`` (with ``ef``, plus its memory,
which is then ``x_t - x_hat_t``: the server's error feedback) and advances
``x_hat <- x_hat + C(...)``; a node that replied to the previous round's message gets the
compressed change (``"downlink"``), any other node (first round, not sampled or failed last
round, after a resume) the whole ``x_hat``. Clients train from ``x_hat``; their updates are
applied to the strategy's own ``x_t`` (a reply's model becomes ``x_t + (model - x_hat)``), as in
double-compression methods. ``x_hat``, the previous model and the compressor's state are the
wrapper's ``state``, checkpointed with the strategy's.
"""

from __future__ import annotations

from collections.abc import Iterable
from copy import copy
from dataclasses import dataclass, field, replace
from logging import WARNING

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from stamen.algorithms.compression import DOWNLINK as DOWNLINK_CHANNEL
from stamen.algorithms.compression import Compression, MalformedPayload, RoundDraws
from stamen.algorithms.compression.settings import downlink_of, uplink_of
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout, model_bytes
from stamen.messages.compressed import compressed_record, read_compressed
from stamen.messages.keys import (
    ARRAYS,
    COMPRESSED,
    CONFIG,
    DOWNLINK,
    DOWNLINK_BASE,
    MODEL_BYTES,
)
from stamen.messages.replies import Refused, model_of, require_finite
from stamen.strategies.wrapper import StrategyWrapper


@dataclass(frozen=True)
class DownlinkState:
    """What the server keeps for the downlink (checkpointed under this name): the model the
    clients hold and its round, the strategy's model of that round, the compressor's state."""

    held: ArrayRecord | None = None
    held_round: int = 0
    previous: torch.Tensor | None = None  # the strategy's model of held_round, flattened
    compressor: dict[str, torch.Tensor] = field(default_factory=dict)


class CompressedTraffic(StrategyWrapper):
    """Runs ``strategy`` with compressed replies (``uplink``) and messages (``downlink``)."""

    def __init__(
        self,
        strategy: Strategy,
        uplink: Compression | None,
        seed: int,
        downlink: Compression | None = None,
    ) -> None:
        super().__init__(strategy)
        self.uplink, self.downlink, self.seed = uplink, downlink, seed
        self.state = DownlinkState()
        self.sent: dict[int, ArrayRecord] = {}  # the strategy's model sent to each node
        self.held: ArrayRecord | None = None  # the model the nodes hold this round
        self.messaged: set[int] = set()  # nodes sent this round's model
        self.holders: set[int] = set()  # nodes that replied to the last message sent

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self.sent = {
            m.metadata.dst_node_id: m.content[ARRAYS]
            for m in messages
            if ARRAYS in m.content.array_records
        }
        self.held = None
        if self.downlink is not None and messages:
            messages = self._compressed_messages(server_round, arrays, messages)
        return messages

    def _compressed_messages(
        self, server_round: int, arrays: ArrayRecord, messages: list[Message]
    ) -> list[Message]:
        layout = ArrayLayout.of(arrays)
        model = layout.flatten(arrays)
        state, change = self.state, None
        if state.held is None:  # the first round: everybody gets the model itself
            held = arrays
        else:
            draws = RoundDraws(self.seed, server_round, channel=DOWNLINK_CHANNEL)
            tensors = layout.float_tensors
            payload, compressor = self.downlink.compress(
                model - state.previous, tensors, draws, state.compressor
            )
            advanced = layout.flatten(state.held) + self.downlink.decompress(
                payload, tensors, draws
            )
            held = layout.unflatten(advanced, arrays)
            integers = {key: arrays[key].numpy() for key in layout.integer_keys}
            change = compressed_record(payload, integers)
            state = replace(state, compressor=compressor)
        declared = {DOWNLINK_BASE: state.held_round, MODEL_BYTES: model_bytes(held)}
        out = []
        for message in messages:
            content = dict(message.content.items())
            if change is not None and message.metadata.dst_node_id in self.holders:
                del content[ARRAYS]
                content[DOWNLINK] = change
                content[CONFIG] = ConfigRecord({**content[CONFIG], **declared})
            else:
                content[ARRAYS] = held
            compressed = copy(message)
            compressed.content = RecordDict(content)
            out.append(compressed)
        self.state = replace(state, held=held, held_round=server_round, previous=model)
        self.held, self.messaged = held, {m.metadata.dst_node_id for m in messages}
        self.holders = set()  # until they reply
        return out

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        if self.held is not None:  # the nodes that replied hold this round's model
            self.holders = {r.metadata.src_node_id for r in replies if not r.has_error()}
            self.holders &= self.messaged
        kept, excluded = [], 0
        for reply in replies:
            try:
                kept.append(self._as_strategy_model(server_round, reply))
            except Refused as refused:
                node = reply.metadata.src_node_id
                log(WARNING, "compressed reply of node %s excluded: %s", node, refused)
                excluded += 1
        arrays, metrics = self.strategy.aggregate_train(server_round, kept)
        if excluded:
            metrics = MetricRecord({**(metrics or {}), "excluded-compressed": excluded})
        return arrays, metrics

    def _as_strategy_model(self, server_round: int, reply: Message) -> Message:
        """``reply`` with the model ``sent + update``: its compressed update decompressed, its
        update relative to the model the node held when the downlink is compressed."""
        compressed = COMPRESSED in reply.content.array_records
        if reply.has_error() or not (compressed or self.held is not None):
            return reply
        if ARRAYS not in reply.content.array_records and not compressed:
            return reply  # not a model: the strategy checks it
        sent = self.sent.get(reply.metadata.src_node_id)
        if sent is None:
            raise Refused("no model was sent to this node this round")
        layout = ArrayLayout.of(sent)
        if compressed:
            update, integers = self._uplink_update(server_round, reply.content[COMPRESSED], layout)
        else:  # the grid saw no "arrays" in the message sent: the model is checked here
            model = model_of(reply.content[ARRAYS], layout)
            update = layout.flatten(model) - layout.flatten(self.held)
            require_finite(update, "the update")
            integers = model
        strategy_model = layout.unflatten(layout.flatten(sent) + update, integers)
        content = {name: rec for name, rec in reply.content.items() if name != COMPRESSED}
        converted = copy(reply)  # same metadata
        converted.content = RecordDict({**content, ARRAYS: strategy_model})
        return converted

    def _uplink_update(
        self, server_round: int, record: ArrayRecord, layout: ArrayLayout
    ) -> tuple[torch.Tensor, ArrayRecord]:
        if self.uplink is None:
            raise Refused("a compressed reply, but this run does not compress the uplink")
        parts = self.uplink.payload_layout(layout.float_tensors)
        payload, integers = read_compressed(record, parts, layout)
        try:
            update = self.uplink.decompress(
                payload, layout.float_tensors, RoundDraws(self.seed, server_round)
            )
        except MalformedPayload as malformed:
            raise Refused(str(malformed)) from None
        return update, integers


def with_compression(strategy: Strategy, experiment: Experiment) -> Strategy:
    """``strategy``, wrapped when the run compresses its traffic either way."""
    uplink, downlink = uplink_of(experiment), downlink_of(experiment)
    if uplink is None and downlink is None:
        return strategy
    return CompressedTraffic(strategy, uplink, experiment.seed, downlink)
