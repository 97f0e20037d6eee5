"""A Grid wrapper that makes client sampling and aggregation order engine-independent.

Node IDs are random on Flower's engines, and replies arrive in completion order. Flower's
strategies sample from ``grid.get_node_ids()`` with Python's ``random`` and sum replies in
the order received, so the same seed would give different runs on different engines. This
wrapper lists nodes by their ``partition-id`` (asked once with a ``query`` message) and
returns replies in the order of the requests; with ``random`` reseeded per round
(:mod:`stamen.strategies.seeded_sampling`), the same clients are sampled and summed in the
same order on every engine. It also counts the training traffic (``traffic``) and drops
malformed training replies and silent nodes (``reply_screen``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from logging import WARNING

from flwr.app import Message, RecordDict
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from stamen.simulations.reply_screen import NO_REPLY, Dropped, refusal
from stamen.simulations.traffic import Traffic, is_training


class PartitionOrderedGrid(Grid):
    """Delegates to ``grid``; nodes sorted by partition id, replies in request order."""

    def __init__(self, grid: Grid, timeout: float = 600.0, traffic: Traffic | None = None) -> None:
        self._grid = grid
        self._timeout = timeout
        self._partition_of: dict[int, float] = {}
        self.traffic = traffic if traffic is not None else Traffic()
        self.dropped: list[Dropped] = []

    def set_run(self, run: Run) -> None:
        self._grid.set_run(run)

    @property
    def run(self) -> Run:
        return self._grid.run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return self._grid.create_message(content, message_type, dst_node_id, group_id, ttl)

    def get_node_ids(self) -> list[int]:
        node_ids = list(self._grid.get_node_ids())
        unknown = [node for node in node_ids if node not in self._partition_of]
        if unknown:
            self._partition_of.update(self._query_partitions(unknown))
        return sorted(node_ids, key=lambda node: (self._partition_of[node], node))

    def partition_id(self, node_id: int) -> int | None:
        """The data partition ``node_id`` reported holding, or None if it did not say."""
        found = self._partition_of.get(node_id, math.inf)
        return None if math.isinf(found) else int(found)

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        return self._grid.push_messages(messages)

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return self._grid.pull_messages(message_ids)

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        messages = list(messages)
        if not messages:
            return []
        replies = list(self._grid.send_and_receive(messages, timeout=timeout))
        self.traffic.count(messages, replies)
        position = {msg.metadata.message_id: i for i, msg in enumerate(messages)}
        replies = sorted(
            replies, key=lambda r: position.get(r.metadata.reply_to_message_id, len(position))
        )
        return self._screen(messages, replies)

    def take_dropped(self) -> list[Dropped]:
        """The training replies dropped since the last call, with the reasons."""
        dropped, self.dropped = self.dropped, []
        return dropped

    def _screen(self, messages: list[Message], replies: list[Message]) -> list[Message]:
        sent = {m.metadata.message_id: m for m in messages if is_training(m)}
        answered, kept = set(), []
        for reply in replies:
            request = sent.get(reply.metadata.reply_to_message_id)
            reason = refusal(request, reply) if request is not None else None
            answered.add(reply.metadata.reply_to_message_id)
            if reason is None:
                kept.append(reply)
            else:  # the node asked (an error reply may come from the SuperLink itself)
                self._drop(request.metadata.dst_node_id, reason)
        for message_id, message in sent.items():
            if message_id not in answered:
                self._drop(message.metadata.dst_node_id, NO_REPLY)
        return kept

    def _drop(self, node_id: int, reason: str) -> None:
        partition = self.partition_id(node_id)
        log(WARNING, "dropped node %s (partition %s): %s", node_id, partition, reason)
        self.dropped.append(Dropped(node_id, reason))

    def _query_partitions(self, node_ids: list[int]) -> dict[int, float]:
        """Ask nodes for their partition id; nodes that cannot say sort last, by node id."""
        queries = [
            Message(RecordDict(), dst_node_id=node, message_type="query") for node in node_ids
        ]
        found = {node: math.inf for node in node_ids}
        for reply in self._grid.send_and_receive(queries, timeout=self._timeout):
            node = reply.metadata.src_node_id
            if reply.has_error() or "partition-id" not in reply.content.get("metrics", {}):
                continue
            found[node] = float(reply.content["metrics"]["partition-id"])
        missing = sum(math.isinf(p) for p in found.values())
        if missing:
            log(WARNING, "%d node(s) did not report a partition-id; ordered by node id", missing)
        return found
