"""Client replies to one stacked ``(n, d)`` tensor of updates and back, validating each reply.

A reply is kept when it carries one ``"arrays"`` record with the global model's keys (in any
order, or its arrays as a list in key order, as ``ArrayRecord(numpy_ndarrays=...)`` writes
them: see ``keyed_as``) and shapes, finite values and a ``MetricRecord`` with
``"num-examples"``; any other reply is excluded from the round (and counted), so one
malformed client never stops the server.
The update of client i is its model minus the global model, flattened in key order.
Replies are read in place (``array_values``) and written once into the ``(n, d)`` tensor.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Message
from flwr.common.constant import SType


def array_values(array: Array) -> np.ndarray:
    """The values of a numpy-serialised ``Array``, read-only, without copying its bytes
    (``Array.numpy`` copies them through ``np.load``)."""
    if array.stype != SType.NUMPY:
        return array.numpy()  # raises flwr's error for other serialisations
    stream = io.BytesIO(array.data)
    version = np.lib.format.read_magic(stream)
    read_header = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }.get(version)
    if read_header is None:
        return array.numpy()
    shape, fortran_order, dtype = read_header(stream)
    if dtype.hasobject:
        return array.numpy()  # refuses pickled objects
    count = int(np.prod(shape, dtype=np.int64))
    flat = np.frombuffer(array.data, dtype=dtype, count=count, offset=stream.tell())
    return flat.reshape(shape, order="F" if fortran_order else "C")


def array_of(values: torch.Tensor | np.ndarray) -> Array:
    """``values`` as a numpy-serialised ``Array``: the bytes ``Array(values)`` holds (``np.save``'s
    format), written with one copy instead of ``np.save``'s three (6x faster for a model)."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    if values.dtype.hasobject:
        return Array(values)  # refuses pickled objects
    if not values.flags.c_contiguous:
        values = values.copy(order="C")
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(values))
    data = b"".join([header.getvalue(), values.reshape(-1).view(np.uint8)])
    return Array(dtype=str(values.dtype), shape=tuple(values.shape), stype=SType.NUMPY, data=data)


def state_record(state: dict[str, torch.Tensor]) -> ArrayRecord:
    """A model's state dict as an ``ArrayRecord`` (as ``ArrayRecord(state)``, faster)."""
    return ArrayRecord({key: array_of(value) for key, value in state.items()})


def keyed_as(arrays: ArrayRecord, keys: Sequence[str]) -> ArrayRecord | None:
    """``arrays`` under ``keys``, in that order: as they are when those are their keys;
    reordered when they hold the same keys in another order; renamed in order when they are
    a list of as many arrays (keys ``"0"``, ``"1"``, ..., as Flower's classic ClientApps reply
    with ``ArrayRecord(numpy_ndarrays=...)``); None for any other keys (missing, extra or
    unknown ones). Shapes are not checked here. No array is copied."""
    found = list(arrays.keys())
    if found == list(keys):
        return arrays
    if set(found) == set(keys):
        return ArrayRecord({key: arrays[key] for key in keys})
    if found == [str(i) for i in range(len(keys))]:
        return ArrayRecord({key: arrays[name] for key, name in zip(keys, found)})
    return None


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

    def conformed(self, arrays: ArrayRecord) -> ArrayRecord | None:
        """``arrays`` under this layout's keys (``keyed_as``) when they have its shapes, else
        None."""
        keyed = keyed_as(arrays, self.keys)
        if keyed is None or any(
            tuple(keyed[key].shape) != shape for key, shape in zip(self.keys, self.shapes)
        ):
            return None
        return keyed

    def flatten(self, arrays: ArrayRecord) -> torch.Tensor:
        """All arrays as one float32 vector, shape (d,)."""
        vector = torch.empty(self.size)
        self.flatten_into(arrays, vector)
        return vector

    def flatten_into(
        self, arrays: ArrayRecord, out: torch.Tensor, minus: torch.Tensor | None = None
    ) -> None:
        """Write the arrays, less ``minus`` (d,) if given, into the contiguous float32 CPU
        vector ``out`` (d,), in one pass."""
        flat, offset = out.numpy(), 0
        subtract = None if minus is None else minus.numpy()
        for key in self.keys:
            values = array_values(arrays[key]).reshape(-1)
            part = slice(offset, offset + values.size)
            if subtract is None:
                flat[part] = values
            else:
                np.subtract(values, subtract[part], out=flat[part], casting="unsafe")
            offset += values.size

    def unflatten(self, vector: torch.Tensor) -> ArrayRecord:
        """The inverse of ``flatten``; integer arrays (e.g. BatchNorm counters) are rounded."""
        flat = vector.detach().cpu().numpy()
        arrays, offset = {}, 0
        for key, shape, dtype in zip(self.keys, self.shapes, self.dtypes):
            size = int(np.prod(shape, dtype=np.int64))
            part = flat[offset : offset + size].reshape(shape)
            part = np.rint(part).astype(dtype) if dtype.kind in "iu" else part.astype(dtype)
            arrays[key] = array_of(part)
            offset += size
        return ArrayRecord(arrays)


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
    examples = next(iter(metrics.values())).get("num-examples") if len(metrics) == 1 else None
    if not isinstance(examples, int | float) or examples <= 0:
        return None
    return float(examples)
