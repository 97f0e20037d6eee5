"""Worker momentum: a client sends ``m <- beta * m + update`` instead of its raw update.

Karimireddy, He & Jaggi, "Learning from History for Byzantine Robust Optimization" (ICML
2021, arXiv 2012.10333): momentum at the workers shrinks the variance of honest updates, so
robust rules can tell them from Byzantine ones. ``m`` persists across rounds in the node's
``Context.state`` (kept by Flower's engines and by SuperNodes alike).
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord, RecordDict

MOMENTUM_KEY = "worker-momentum"


def apply_worker_momentum(state: RecordDict, update: torch.Tensor, beta: float) -> torch.Tensor:
    """Advance the node's momentum with ``update`` (shape (d,)) and return it."""
    previous = state.get(MOMENTUM_KEY)
    momentum = update
    if previous is not None:
        momentum = beta * previous.to_torch_state_dict()["m"].to(update) + update
    state[MOMENTUM_KEY] = ArrayRecord({"m": momentum.detach().cpu()})
    return momentum
