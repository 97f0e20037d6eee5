"""The server's side of communication compression: the clients' compressed updates become
models before the strategy sees them, so every strategy (flwr's FedAvg, robust aggregation,
FedDF) aggregates them unchanged and compression x robust aggregation is a grid axis.

``configure_train`` records the arrays each node is sent. A reply carrying ``"compressed"``
must hold exactly the parts the compressor sends for that model, with their shapes and dtypes
(and the model's integer arrays); it is decompressed (``stamen.algorithms.compression``; the
shared coordinates are drawn as the clients drew them) into ``sent + update``. A reply that
fails is excluded, logged and counted (``excluded-compressed``). Replies with a model pass
unchanged: a ClientApp that does not compress still takes part.
"""

from __future__ import annotations

from collections.abc import Iterable
from copy import copy
from logging import WARNING

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy

from stamen.algorithms.compression import Compression, MalformedPayload, RoundDraws
from stamen.algorithms.compression.settings import uplink_of
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout, array_of
from stamen.messages.keys import ARRAYS, COMPRESSED
from stamen.messages.replies import Refused, arrays_as
from stamen.strategies.wrapper import StrategyWrapper


class CompressedTraffic(StrategyWrapper):
    """Runs ``strategy`` on replies whose compressed updates (``uplink``) are decompressed."""

    def __init__(self, strategy: Strategy, uplink: Compression, seed: int) -> None:
        super().__init__(strategy)
        self.uplink = uplink
        self.seed = seed
        self.sent: dict[int, ArrayRecord] = {}

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        messages = list(self.strategy.configure_train(server_round, arrays, config, grid))
        self.sent = {
            m.metadata.dst_node_id: m.content[ARRAYS]
            for m in messages
            if ARRAYS in m.content.array_records
        }
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        kept, excluded = [], 0
        for reply in replies:
            try:
                kept.append(self._decompressed(server_round, reply))
            except Refused as refused:
                node = reply.metadata.src_node_id
                log(WARNING, "compressed reply of node %s excluded: %s", node, refused)
                excluded += 1
        arrays, metrics = self.strategy.aggregate_train(server_round, kept)
        if excluded:
            metrics = MetricRecord({**(metrics or {}), "excluded-compressed": excluded})
        return arrays, metrics

    def _decompressed(self, server_round: int, reply: Message) -> Message:
        """``reply`` with its compressed update replaced by the model ``sent + update``."""
        if reply.has_error() or COMPRESSED not in reply.content.array_records:
            return reply
        sent = self.sent.get(reply.metadata.src_node_id)
        if sent is None:
            raise Refused("no model was sent to this node this round")
        layout = ArrayLayout.of(sent)
        parts = {
            key: (shape, _numpy_dtype(dtype))
            for key, (shape, dtype) in self.uplink.payload_layout(layout.float_tensors).items()
        }
        integers = dict(zip(layout.keys, zip(layout.shapes, layout.dtypes)))
        expected = {**parts, **{key: integers[key] for key in layout.integer_keys}}
        values = arrays_as(reply.content[COMPRESSED], expected)
        payload = {key: torch.from_numpy(np.array(values[key])) for key in parts}
        try:
            update = self.uplink.decompress(
                payload, layout.float_tensors, RoundDraws(self.seed, server_round)
            )
        except MalformedPayload as malformed:
            raise Refused(str(malformed)) from None
        integer_arrays = ArrayRecord({key: array_of(values[key]) for key in layout.integer_keys})
        model = layout.unflatten(layout.flatten(sent) + update, integer_arrays)
        content = {name: record for name, record in reply.content.items() if name != COMPRESSED}
        decompressed = copy(reply)  # same metadata
        decompressed.content = RecordDict({**content, ARRAYS: model})
        return decompressed


def with_compression(strategy: Strategy, experiment: Experiment) -> Strategy:
    """``strategy``, wrapped to decompress the clients' updates when the run compresses them."""
    uplink = uplink_of(experiment)
    return strategy if uplink is None else CompressedTraffic(strategy, uplink, experiment.seed)


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype
