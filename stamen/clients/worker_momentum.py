"""Worker momentum: a client sends ``m <- beta * m + update`` instead of its raw update.

Karimireddy, He & Jaggi, "Learning from History for Byzantine Robust Optimization" (ICML
2021, arXiv 2012.10333): momentum at the workers shrinks the variance of honest updates, so
robust rules can tell them from Byzantine ones. ``m`` persists across rounds in the node's
``Context.state`` (kept by Flower's engines and by SuperNodes alike).

A node that sat out rounds (not sampled, or a round skipped) continues from its latest
round ``s < t`` as if it had sent zero updates in between: ``m <- beta^(t - s) m + update``,
so momentum from long ago fades as it would have at every round; the papers' setting, every
worker in every round, has ``t - s = 1``.

The node keeps ``m`` of its two latest rounds, and round ``t`` continues the latest one
before ``t``: a run resumed after round ``r`` may find this node already past ``r`` (it
trained in round ``r + 1`` before the server stopped), and must start from its ``m`` of
round ``r`` or earlier. In a simulation the state also goes to a file (``store``), so
that it outlives the process a resumed run replaces.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from flwr.app import ArrayRecord, RecordDict

MOMENTUM_KEY = "worker-momentum"


def apply_worker_momentum(
    state: RecordDict,
    update: torch.Tensor,
    beta: float,
    server_round: int,
    store: Path | None = None,
) -> torch.Tensor:
    """Advance the node's momentum with ``update`` (shape (d,)) in ``server_round``."""
    kept = _load(state, store)
    previous = max((r for r in kept if r < server_round), default=None)
    if previous is None:
        momentum, kept = update, {}
    else:
        decay = beta ** (server_round - previous)
        momentum, kept = decay * kept[previous].to(update) + update, {previous: kept[previous]}
    kept[server_round] = momentum.detach().cpu()
    state[MOMENTUM_KEY] = ArrayRecord({str(r): m for r, m in kept.items()})
    if store is not None:
        tmp = store.with_suffix(".tmp")
        store.parent.mkdir(parents=True, exist_ok=True)
        torch.save(kept, tmp)
        os.replace(tmp, store)
    return momentum


def _load(state: RecordDict, store: Path | None) -> dict[int, torch.Tensor]:
    if MOMENTUM_KEY in state:
        return {int(r): m for r, m in state[MOMENTUM_KEY].to_torch_state_dict().items()}
    if store is not None and store.exists():
        return torch.load(store, weights_only=True)
    return {}
