"""A client's update as one flat vector: the model after local work minus the model before.

Only floating-point tensors take part; integer buffers (e.g. BatchNorm's counters) keep their
trained values. Attacks and worker momentum act on this vector.
"""

from __future__ import annotations

import torch

State = dict[str, torch.Tensor]


def float_keys(state: State) -> list[str]:
    return [key for key, value in state.items() if value.is_floating_point()]


def flat_delta(start: State, trained: State) -> torch.Tensor:
    """``trained - start`` over the floating-point tensors, flattened: shape (d,)."""
    keys = float_keys(trained)
    return torch.cat([(trained[k] - start[k].to(trained[k])).flatten() for k in keys])


def with_delta(start: State, trained: State, delta: torch.Tensor) -> State:
    """The state ``start + delta`` (floating-point tensors), other tensors from ``trained``."""
    result, offset = dict(trained), 0
    for key in float_keys(trained):
        size = trained[key].numel()
        part = delta[offset : offset + size].view_as(trained[key])
        result[key] = start[key].to(trained[key]) + part
        offset += size
    return result
