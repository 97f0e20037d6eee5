"""The wire form of a compressed update or model change, both ways (``"compressed"`` in a
reply, ``"downlink"`` in a train message): one ArrayRecord with each tensor's parts under
``"<tensor>/<part>"`` (values, indices in the smallest unsigned type, factors, ...) and the
model's integer arrays (BatchNorm's counters) whole under their own keys.

The receiver reads it against what the sender's method sends for its model (``parts``: each
part's shape and torch dtype): exactly those arrays, declared and read as such, or ``Refused``.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import ArrayRecord

from stamen.messages.arrays import ArrayLayout, array_of, tensors_record
from stamen.messages.replies import arrays_as

PartsLayout = dict[str, tuple[tuple[int, ...], torch.dtype]]


def compressed_record(
    payload: dict[str, torch.Tensor], integers: dict[str, torch.Tensor | np.ndarray]
) -> ArrayRecord:
    """The record of a payload and the model's integer arrays."""
    record = tensors_record(payload)
    for key, value in integers.items():
        record[key] = array_of(value)
    return record


def read_compressed(
    record: ArrayRecord, parts: PartsLayout, layout: ArrayLayout
) -> tuple[dict[str, torch.Tensor], ArrayRecord]:
    """The payload's parts as tensors and the integer arrays of ``layout``'s model."""
    expected = {key: (shape, _numpy(dtype)) for key, (shape, dtype) in parts.items()}
    integers = dict(zip(layout.keys, zip(layout.shapes, layout.dtypes)))
    expected.update({key: integers[key] for key in layout.integer_keys})
    values = arrays_as(record, expected)
    payload = {key: torch.from_numpy(np.array(values[key])) for key in parts}
    return payload, ArrayRecord({key: record[key] for key in layout.integer_keys})


def _numpy(dtype: torch.dtype) -> np.dtype:
    return torch.empty(0, dtype=dtype).numpy().dtype
