"""A Grid wrapper that makes client sampling and aggregation order engine-independent.

Node IDs are random on Flower's engines, and replies arrive in completion order. Flower's
strategies sample from ``grid.get_node_ids()`` with Python's ``random`` and sum replies in
the order received, so the same seed would give different runs on different engines. This
wrapper lists nodes by their ``partition-id`` (asked once with a ``query`` message) and
returns replies in the order of the requests; with ``random`` reseeded per round
(:mod:`stamen.strategies.seeded_sampling`), the same clients are sampled and summed in the
same order on every engine. It also counts the training traffic (``traffic``) and drops
malformed training replies and silent nodes (``reply_screen``).

Only Stamen's ClientApp answers the query: a ClientApp without a query handler would make
Flower log an error for each node, so nodes of any other ClientApp are not asked (the run's
Flower App names its ClientApp: ``named_client_app``). Nodes that do not tell their partition
are numbered after the known ones in node-id order (one log line), which keeps each client's
row from round to round and gives simulated attacks a partition for every node.
"""

from __future__ import annotations

from collections.abc import Iterable
from logging import INFO, WARNING

from flwr.app import Message, RecordDict
from flwr.common.config import get_project_config, get_project_dir
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.supercore.run import Run

from stamen.messages.keys import METRICS, PARTITION_ID
from stamen.simulations.reply_screen import NO_REPLY, Dropped, refusal, with_sent_keys
from stamen.simulations.traffic import Traffic, is_training

STAMEN_CLIENT_APP = "stamen.clients.client_app:app"  # the ClientApp that answers the query


def named_client_app(run: Run) -> str | None:
    """The ClientApp (``module:attribute``) named by the run's Flower App, read from the App
    as Flower installed it for the run; None when there is none (the in-process engine)."""
    try:
        config = get_project_config(get_project_dir(run.fab_id, run.fab_version, run.fab_hash))
        return str(config["tool"]["flwr"]["app"]["components"]["clientapp"])
    except (ValueError, OSError, KeyError):
        return None


class PartitionOrderedGrid(Grid):
    """Delegates to ``grid``; nodes sorted by partition id, replies in request order.

    ``ask_partitions``: whether the nodes run Stamen's ClientApp, which tells its partition
    when asked; other nodes are numbered in node-id order."""

    def __init__(
        self,
        grid: Grid,
        timeout: float = 600.0,
        traffic: Traffic | None = None,
        ask_partitions: bool = True,
    ) -> None:
        self._grid = grid
        self._timeout = timeout
        self._ask_partitions = ask_partitions
        self._partition_of: dict[int, int] = {}
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
        unknown = sorted(node for node in node_ids if node not in self._partition_of)
        if unknown and self._ask_partitions:
            self._partition_of.update(self._query_partitions(unknown))
            silent = [node for node in unknown if node not in self._partition_of]
            if silent:
                self._number(silent, WARNING, "did not report a partition-id")
        elif unknown:
            self._number(unknown, INFO, "not asked for a partition-id (not Stamen's ClientApp)")
        return sorted(node_ids, key=lambda node: (self._partition_of[node], node))

    def partition_id(self, node_id: int) -> int | None:
        """The data partition ``node_id`` reported holding (or the number it was given when it
        could not tell), None for a node never listed."""
        return self._partition_of.get(node_id)

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
                kept.append(reply if request is None else with_sent_keys(request, reply))
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

    def _query_partitions(self, node_ids: list[int]) -> dict[int, int]:
        """Ask nodes for their partition id; those that answer, by node id."""
        queries = [
            Message(RecordDict(), dst_node_id=node, message_type="query") for node in node_ids
        ]
        found = {}
        for reply in self._grid.send_and_receive(queries, timeout=self._timeout):
            if reply.has_error() or PARTITION_ID not in reply.content.get(METRICS, {}):
                continue
            found[reply.metadata.src_node_id] = int(reply.content[METRICS][PARTITION_ID])
        return found

    def _number(self, node_ids: list[int], level: int, why: str) -> None:
        """Number ``node_ids`` (sorted) after every partition known, in node-id order."""
        start = max(self._partition_of.values(), default=-1) + 1
        self._partition_of.update({node: start + i for i, node in enumerate(node_ids)})
        count, end = len(node_ids), start + len(node_ids) - 1
        log(level, "%d node(s) %s: numbered %d to %d in node-id order", count, why, start, end)
