"""The wire form of a pruned model (``"pruned"`` in a train message): for each tensor with a
mask, its kept values (float32), its mask packed eight to a byte and its shape; every other
tensor whole under its key. The receiver rebuilds the model with zeros where pruned.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord

from stamen.messages.arrays import array_of, array_values
from stamen.messages.replies import Refused

VALUES, MASK, SHAPE = "values", "mask", "shape"


def pruned_record(arrays: ArrayRecord, masks: dict[str, np.ndarray]) -> ArrayRecord:
    """``arrays`` with the tensors of ``masks`` (True: kept) sent as kept values and mask."""
    record = {}
    for key in arrays:
        if key not in masks:
            record[key] = arrays[key]
            continue
        values, mask = array_values(arrays[key]), masks[key]
        record[f"{key}/{VALUES}"] = array_of(values[mask].astype(np.float32))
        record[f"{key}/{MASK}"] = array_of(np.packbits(mask.reshape(-1)))
        record[f"{key}/{SHAPE}"] = array_of(np.array(values.shape, dtype=np.int64))
    return ArrayRecord(record)


def unpruned(record: ArrayRecord) -> ArrayRecord:
    """The model ``pruned_record`` encoded, zeros where pruned; ``Refused`` if malformed."""
    arrays, keys = {}, list(record.keys())
    for key in keys:
        name, _, part = key.rpartition("/")
        if not name:
            arrays[key] = record[key]
        elif part == VALUES:
            arrays[name] = array_of(_dense(record, name))
        elif part not in (MASK, SHAPE) or f"{name}/{VALUES}" not in record:
            raise Refused(f"unexpected part {key!r} of a pruned model")
    return ArrayRecord(arrays)


def pruned_masks(record: ArrayRecord) -> dict[str, np.ndarray]:
    """The masks (True: kept) of the model ``pruned_record`` encoded, by tensor name;
    ``Refused`` if malformed."""
    names = [key.rpartition("/")[0] for key in record.keys() if key.endswith(f"/{MASK}")]
    return {name: _mask(record, name) for name in names}


def _mask(record: ArrayRecord, name: str) -> np.ndarray:
    try:
        shape = tuple(int(n) for n in array_values(record[f"{name}/{SHAPE}"]))
        size = int(np.prod(shape, dtype=np.int64))
        packed = array_values(record[f"{name}/{MASK}"])
        return np.unpackbits(packed, count=size).astype(bool).reshape(shape)
    except (KeyError, ValueError, TypeError) as error:
        raise Refused(f"pruned tensor {name}: {error}") from None


def _dense(record: ArrayRecord, name: str) -> np.ndarray:
    mask = _mask(record, name)
    try:
        values = array_values(record[f"{name}/{VALUES}"])
    except (KeyError, ValueError, TypeError) as error:
        raise Refused(f"pruned tensor {name}: {error}") from None
    if values.dtype != np.float32 or values.shape != (int(mask.sum()),):
        raise Refused(f"pruned tensor {name}: {values.shape} values for {int(mask.sum())} kept")
    dense = np.zeros(mask.shape, dtype=np.float32)
    dense[mask] = values
    return dense
