"""The one packing of tensors into Flower ``ArrayRecord``s and back, on both sides of the wire.

``state_record`` writes a model's state dict (numpy-serialised, one copy); ``array_values``
reads an ``Array`` without copying; ``keyed_as`` accepts a model sent back under its keys in
any order or as a list in the order sent (``ArrayRecord(numpy_ndarrays=...)``, Flower's
classic ClientApps); ``ArrayLayout`` packs a model's floating-point arrays (of a record or a
state dict) into one update vector and back;
``tensors_record`` / ``record_tensors`` carry named flat tensors (Mime's optimizer state,
control variate and gradient).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
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


def model_bytes(arrays: ArrayRecord) -> int:
    """The serialised bytes of a model's arrays."""
    return sum(len(array.data) for array in arrays.values())


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


State = dict[str, torch.Tensor]


def _floating(dtype: np.dtype) -> bool:
    return dtype.kind == "f"


@dataclass(frozen=True)
class ArrayLayout:
    """Keys, shapes and dtypes of a model's arrays, and the one packing of its update vector
    on clients and server: the floating-point arrays, in key order, each flattened C-order.
    Integer arrays (e.g. BatchNorm's counters) are not in the vector: ``unflatten`` takes
    them from a given model."""

    keys: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    dtypes: tuple[np.dtype, ...]

    @classmethod
    def of(cls, arrays: ArrayRecord) -> ArrayLayout:
        """The layout of a model record, read from its arrays' metadata (nothing decoded)."""
        shapes = tuple(tuple(array.shape) for array in arrays.values())
        return cls(tuple(arrays), shapes, tuple(np.dtype(a.dtype) for a in arrays.values()))

    @classmethod
    def of_state(cls, state: State) -> ArrayLayout:
        """The layout of a state dict (or of named parameters)."""
        dtypes = tuple(torch.empty(0, dtype=v.dtype).numpy().dtype for v in state.values())
        return cls(tuple(state), tuple(tuple(v.shape) for v in state.values()), dtypes)

    @property
    def float_keys(self) -> tuple[str, ...]:
        return tuple(k for k, dtype in zip(self.keys, self.dtypes) if _floating(dtype))

    @property
    def float_tensors(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """The name and shape of each floating-point array, in the vector's order."""
        return tuple(
            (key, shape)
            for key, shape, dtype in zip(self.keys, self.shapes, self.dtypes)
            if _floating(dtype)
        )

    @property
    def integer_keys(self) -> tuple[str, ...]:
        return tuple(k for k, dtype in zip(self.keys, self.dtypes) if not _floating(dtype))

    @property
    def size(self) -> int:
        """d, the length of the vector: the number of floating-point values."""
        return int(
            sum(
                np.prod(shape, dtype=np.int64)
                for shape, dtype in zip(self.shapes, self.dtypes)
                if _floating(dtype)
            )
        )

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
        """The floating-point arrays as one float32 vector, shape (d,)."""
        vector = torch.empty(self.size)
        self.flatten_into(arrays, vector)
        return vector

    def flatten_into(
        self, arrays: ArrayRecord, out: torch.Tensor, minus: torch.Tensor | None = None
    ) -> None:
        """Write the floating-point arrays, less ``minus`` (d,) if given, into the contiguous
        float32 CPU vector ``out`` (d,), in one pass."""
        flat, offset = out.numpy(), 0
        subtract = None if minus is None else minus.numpy()
        for key in self.float_keys:
            values = array_values(arrays[key]).reshape(-1)
            part = slice(offset, offset + values.size)
            if subtract is None:
                flat[part] = values
            else:
                np.subtract(values, subtract[part], out=flat[part], casting="unsafe")
            offset += values.size

    def unflatten(self, vector: torch.Tensor, integers: ArrayRecord | None = None) -> ArrayRecord:
        """The inverse of ``flatten``, with the integer arrays of ``integers`` (needed when
        the layout has some)."""
        flat = vector.detach().cpu().numpy()
        arrays, offset = {}, 0
        for key, shape, dtype in zip(self.keys, self.shapes, self.dtypes):
            if not _floating(dtype):
                if integers is None:
                    raise ValueError(f"{key} is an integer array: unflatten needs integers")
                arrays[key] = integers[key]
                continue
            size = int(np.prod(shape, dtype=np.int64))
            arrays[key] = array_of(flat[offset : offset + size].reshape(shape).astype(dtype))
            offset += size
        return ArrayRecord(arrays)

    def flatten_state(self, state: State) -> torch.Tensor:
        """The floating-point tensors of a state dict as one vector (d,), on their device."""
        return torch.cat([state[key].reshape(-1) for key in self.float_keys])

    def unflatten_state(self, vector: torch.Tensor, integers: State) -> State:
        """The inverse of ``flatten_state``: views of ``vector``, with the other tensors of
        ``integers``."""
        state, offset = dict(integers), 0
        for key, shape, dtype in zip(self.keys, self.shapes, self.dtypes):
            if _floating(dtype):
                size = int(np.prod(shape, dtype=np.int64))
                state[key] = vector[offset : offset + size].view(shape)
                offset += size
        return state


def tensors_record(tensors: dict[str, torch.Tensor] | None) -> ArrayRecord:
    """Named tensors as an ArrayRecord (empty for None)."""
    return ArrayRecord({key: array_of(value) for key, value in (tensors or {}).items()})


def record_tensors(record: ArrayRecord) -> dict[str, torch.Tensor]:
    """The inverse of ``tensors_record``: writable tensors, one per key."""
    return {key: torch.from_numpy(np.array(array_values(record[key]))) for key in record}
