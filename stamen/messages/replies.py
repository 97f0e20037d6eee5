"""Reply checks, the same for every strategy and the grid's screen: a reply is kept when it
carries its model (``"arrays"``: the global model's keys, in any order or as a list in the
order sent, and shapes), finite values and a ``MetricRecord`` with a positive
``"num-examples"``; any other reply is excluded from the round and counted, so one malformed
client never stops the server.

``stack_updates`` writes the valid replies' updates (model minus global model, flattened in
key order) once into one ``(n, d)`` tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from flwr.app import Message

from stamen.messages.arrays import ArrayLayout
from stamen.messages.keys import NUM_EXAMPLES


def all_finite(values: torch.Tensor) -> bool:
    """No NaN or Inf in ``values``: one pass, no mask (6x faster than ``isfinite().all()``)."""
    if values.numel() == 0:
        return True
    low, high = torch.aminmax(values)
    return bool(torch.isfinite(low) and torch.isfinite(high))


@dataclass(frozen=True)
class StackedUpdates:
    """The round's valid replies as updates, and what was excluded."""

    updates: torch.Tensor  # (n, d): client model minus global model
    node_ids: tuple[int, ...]
    num_examples: tuple[float, ...]
    excluded: int


def stack_updates(
    replies: Iterable[Message],
    reference: torch.Tensor,
    layout: ArrayLayout,
    key: str | None = None,
) -> StackedUpdates:
    """Validate and stack the replies' models as updates relative to ``reference`` (d,),
    the flattened global model. The model is the reply's only ArrayRecord, or the one
    under ``key`` when replies carry several."""
    replies = [reply for reply in replies if not reply.has_error()]
    updates = torch.empty((len(replies), layout.size))
    node_ids, counts, excluded = [], [], 0
    for reply in replies:
        row = updates[len(node_ids)]
        examples = _valid_model_into(reply, layout, key, row, reference)
        if examples is None:
            excluded += 1
            continue
        node_ids.append(reply.metadata.src_node_id)
        counts.append(examples)
    return StackedUpdates(updates[: len(node_ids)], tuple(node_ids), tuple(counts), excluded)


def _valid_model_into(
    reply: Message, layout: ArrayLayout, key: str | None, row: torch.Tensor, reference: torch.Tensor
) -> float | None:
    """The reply's number of examples, with its model less ``reference`` written into
    ``row``; None (and ``row`` undefined) when the reply is not a valid model."""
    content = reply.content
    records = content.array_records
    found = len(records) == 1 if key is None else key in records
    examples = num_examples(reply)
    if not found or examples is None:
        return None
    arrays = layout.conformed(records[key] if key is not None else next(iter(records.values())))
    if arrays is None:
        return None
    layout.flatten_into(arrays, row, reference)
    if not all_finite(row):  # NaN or Inf in the model, or an update that overflows
        return None
    return float(examples)


def num_examples(reply: Message) -> float | None:
    """The positive ``"num-examples"`` of a reply's one MetricRecord, or None."""
    metrics = reply.content.metric_records
    examples = next(iter(metrics.values())).get(NUM_EXAMPLES) if len(metrics) == 1 else None
    if not isinstance(examples, int | float) or examples <= 0:
        return None
    return float(examples)
