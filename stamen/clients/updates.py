"""A client's update as one flat vector: the model after local work minus the model before,
packed by ``ArrayLayout`` (floating-point tensors only; integer buffers, e.g. BatchNorm's
counters, keep their trained values). Attacks and worker momentum act on this vector.
"""

from __future__ import annotations

import torch

from stamen.messages.arrays import ArrayLayout, State


def flat_delta(start: State, trained: State) -> torch.Tensor:
    """``trained - start`` over the floating-point tensors, flattened: shape (d,)."""
    layout = ArrayLayout.of_state(trained)
    after = layout.flatten_state(trained)
    return after - layout.flatten_state(start).to(after)


def with_delta(start: State, trained: State, delta: torch.Tensor) -> State:
    """The state ``start + delta`` (floating-point tensors), other tensors from ``trained``."""
    layout = ArrayLayout.of_state(trained)
    return layout.unflatten_state(layout.flatten_state(start).to(delta) + delta, trained)
