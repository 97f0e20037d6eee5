"""Client replies to one stacked ``(n, d)`` tensor of updates and back, validating each reply.

A reply is kept when it carries one ``"arrays"`` record with the global model's keys and
shapes, finite values and a ``MetricRecord`` with ``"num-examples"``; any other reply is
excluded from the round (and counted), so one malformed client never stops the server.
The update of client i is its model minus the global model, flattened in key order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Message


@dataclass(frozen=True)
class ArrayLayout:
    """Keys, shapes and dtypes of a model's arrays, to flatten and unflatten them."""

    keys: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]

    @classmethod
    def of(cls, arrays: ArrayRecord) -> ArrayLayout:
        values = [arrays[key].numpy() for key in arrays]
        return cls(tuple(arrays), tuple(v.shape for v in values), tuple(v.dtype for v in values))

    @property
    def size(self) -> int:
        return int(sum(np.prod(shape, dtype=np.int64) for shape in self.shapes))

    def matches(self, arrays: ArrayRecord) -> bool:
        return tuple(arrays) == self.keys and all(
            tuple(arrays[key].shape) == shape for key, shape in zip(self.keys, self.shapes)
        )

    def flatten(self, arrays: ArrayRecord) -> torch.Tensor:
        """All arrays as one float32 vector, shape (d,)."""
        parts = [np.asarray(arrays[key].numpy(), dtype=np.float32).ravel() for key in self.keys]
        return torch.from_numpy(np.concatenate(parts)) if parts else torch.zeros(0)

    def unflatten(self, vector: torch.Tensor) -> ArrayRecord:
        """The inverse of ``flatten``; integer arrays (e.g. BatchNorm counters) are rounded."""
        flat = vector.detach().cpu().numpy()
        arrays, offset = {}, 0
        for key, shape, dtype in zip(self.keys, self.shapes, self.dtypes):
            size = int(np.prod(shape, dtype=np.int64))
            part = flat[offset : offset + size].reshape(shape)
            part = np.rint(part).astype(dtype) if dtype.kind in "iu" else part.astype(dtype)
            arrays[key] = Array(np.asarray(part))
            offset += size
        return ArrayRecord(arrays)


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
    rows, node_ids, counts, excluded = [], [], [], 0
    for reply in replies:
        if reply.has_error():
            continue
        vector, examples = _valid_model(reply, layout, key)
        if vector is None:
            excluded += 1
            continue
        rows.append(vector - reference)
        node_ids.append(reply.metadata.src_node_id)
        counts.append(examples)
    updates = torch.stack(rows) if rows else torch.zeros((0, layout.size))
    return StackedUpdates(updates, tuple(node_ids), tuple(counts), excluded)


def _valid_model(
    reply: Message, layout: ArrayLayout, key: str | None
) -> tuple[torch.Tensor | None, float]:
    content = reply.content
    records = content.array_records
    found = len(records) == 1 if key is None else key in records
    examples = num_examples(reply)
    if not found or examples is None:
        return None, 0.0
    arrays = records[key] if key is not None else next(iter(records.values()))
    if not layout.matches(arrays):
        return None, 0.0
    vector = layout.flatten(arrays)
    if not torch.isfinite(vector).all():
        return None, 0.0
    return vector, float(examples)


def num_examples(reply: Message) -> float | None:
    """The positive ``"num-examples"`` of a reply's one MetricRecord, or None."""
    metrics = reply.content.metric_records
    examples = next(iter(metrics.values())).get("num-examples") if len(metrics) == 1 else None
    if not isinstance(examples, int | float) or examples <= 0:
        return None
    return float(examples)
