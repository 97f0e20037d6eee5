"""A safe encoding of the server's state: plain values and tensors, read without running code.

``encode`` turns a state tree into what ``torch.load(weights_only=True)`` reads back without
importing or calling anything: ``None``, ``bool``, ``int``, ``float``, ``str``, tensors, lists,
and dicts with string keys. Every other value becomes a tagged tuple (tuples appear nowhere
else, so a tag is never mistaken for data):

- ``("tuple", [items])``;
- ``("ndarray", tensor)``: a NumPy array (flwr's FedAvgM momentum, FedOpt's moments);
- ``("ArrayRecord", {name: tensor})``: flwr's ArrayRecord as a state dict, in its order;
- ``("dataclass", name, {field: value})``: one of the state classes in ``STATE_CLASSES``.

``decode`` rebuilds only those: a class is found by name in ``STATE_CLASSES``, never imported,
and its fields are taken from the file, so a class may change its fields (a file written
with other fields is refused). Anything else is a ``ValueError`` naming what was found.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord

from stamen.attacks.mimic import MimicState
from stamen.strategies.compressed_traffic import DownlinkState
from stamen.strategies.feddf import FedDFState
from stamen.strategies.mime import MimeState
from stamen.strategies.powersgd import PowerSGDState
from stamen.strategies.pruned_model import PruningState
from stamen.strategies.server_step import RobustState

# The dataclasses a checkpoint may hold: the strategies' states (RobustState: the robust and
# secure strategies'), the attacks' states and the compressed downlink's.
STATE_CLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        RobustState,
        MimeState,
        FedDFState,
        PowerSGDState,
        MimicState,
        DownlinkState,
        PruningState,
    )
}
# Exact types: subclasses (NumPy's float64, an IntEnum) would be pickled as their own class.
_PLAIN = (type(None), bool, int, float, str)


def encode(value: Any) -> Any:
    """``value`` as plain values, tensors, lists, str-keyed dicts and tagged tuples."""
    if type(value) in _PLAIN:
        return value
    if isinstance(value, torch.Tensor):
        return value.as_subclass(torch.Tensor)  # a Parameter as a plain tensor
    if isinstance(value, list):
        return [encode(item) for item in value]
    if isinstance(value, tuple):
        return ("tuple", [encode(item) for item in value])
    if isinstance(value, dict):
        if not all(isinstance(key, str) for key in value):
            raise ValueError(f"cannot encode a dict with non-string keys: {list(value)[:5]}")
        return {key: encode(item) for key, item in value.items()}
    if isinstance(value, np.ndarray):
        return ("ndarray", torch.from_numpy(np.ascontiguousarray(value)))
    if isinstance(value, ArrayRecord):
        return ("ArrayRecord", dict(value.to_torch_state_dict()))
    if dataclasses.is_dataclass(value) and STATE_CLASSES.get(type(value).__name__) is type(value):
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return ("dataclass", type(value).__name__, fields)
    raise ValueError(
        f"cannot encode a {type(value).__module__}.{type(value).__qualname__}: a state holds "
        f"plain values, tensors, arrays and the classes {', '.join(STATE_CLASSES)}"
    )


def decode(tree: Any) -> Any:
    """The state ``encode`` was given, rebuilt from its encoding."""
    if type(tree) in _PLAIN or type(tree) is torch.Tensor:
        return tree
    if isinstance(tree, list):
        return [decode(item) for item in tree]
    if isinstance(tree, dict):
        return {key: decode(item) for key, item in tree.items()}
    if isinstance(tree, tuple) and tree:
        return _decode_tagged(tree[0], tree[1:])
    raise ValueError(f"unexpected {type(tree).__name__} in the state")


def _decode_tagged(tag: Any, payload: tuple) -> Any:
    if tag == "tuple" and len(payload) == 1 and isinstance(payload[0], list):
        return tuple(decode(item) for item in payload[0])
    if tag == "ndarray" and len(payload) == 1 and isinstance(payload[0], torch.Tensor):
        return payload[0].numpy()
    if tag == "ArrayRecord" and len(payload) == 1 and _is_state_dict(payload[0]):
        return ArrayRecord(torch_state_dict=payload[0])
    if tag == "dataclass" and len(payload) == 2 and isinstance(payload[1], dict):
        name, fields = payload
        cls = STATE_CLASSES.get(name) if isinstance(name, str) else None
        if cls is None:
            raise ValueError(f"unknown state class {name!r}: expected one of {list(STATE_CLASSES)}")
        expected = {f.name for f in dataclasses.fields(cls)}
        if set(fields) != expected:
            raise ValueError(f"{name} has fields {sorted(expected)}, the file {sorted(fields)}")
        return cls(**{key: decode(value) for key, value in fields.items()})
    raise ValueError(f"unexpected tagged value {tag!r} in the state")


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )
