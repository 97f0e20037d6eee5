"""Bytes of model traffic between the server and its clients, counted by the grid.

A message's payload is the serialised size of its ArrayRecords (models, gradients,
optimizer states); configs and metrics are a few hundred bytes and are not counted.
Training traffic is every message but evaluation and the one-off partition query, so
Mime's gradient phase counts towards the round it serves.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from flwr.app import Message, MessageType

from stamen.messages.arrays import model_bytes


def payload_bytes(message: Message) -> int:
    """Serialised bytes of the message's arrays."""
    if message.has_error():
        return 0
    return sum(model_bytes(record) for record in message.content.array_records.values())


@dataclass
class Traffic:
    """Training bytes sent and received since the last ``take``, and the messages sent."""

    sent: int = 0
    received: int = 0
    messages: set[int] = field(default_factory=set)

    def count(self, messages: Iterable[Message], replies: Iterable[Message]) -> None:
        messages = [m for m in messages if is_training(m)]
        replies = [r for r in replies if is_training(r)]
        self.sent += sum(payload_bytes(m) for m in messages)
        self.received += sum(payload_bytes(r) for r in replies)
        self.messages.update(m.metadata.dst_node_id for m in messages)

    def take(self) -> dict[str, float]:
        """Per client of the round (nodes messaged): bytes sent to it and received from it."""
        clients = max(len(self.messages), 1)
        taken = {"bytes-down": self.sent / clients, "bytes-up": self.received / clients}
        self.sent, self.received, self.messages = 0, 0, set()
        return taken


def is_training(message: Message) -> bool:
    """Training traffic: every message but evaluation and the partition query."""
    message_type = message.metadata.message_type
    category = message_type.split(".")[0]
    return category != MessageType.EVALUATE and message_type != MessageType.QUERY
