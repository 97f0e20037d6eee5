"""Worker momentum: a client sends ``m <- beta * m + update`` instead of its raw update.

Karimireddy, He & Jaggi, "Learning from History for Byzantine Robust Optimization" (ICML
2021, arXiv 2012.10333): momentum at the workers shrinks the variance of honest updates, so
robust rules can tell them from Byzantine ones. ``m`` persists across rounds in the node's
``RoundMemory``.

A node that sat out rounds (not sampled, or a round skipped) continues from its latest
round ``s < t`` as if it had sent zero updates in between: ``m <- beta^(t - s) m + update``,
so momentum from long ago fades as it would have at every round; the papers' setting, every
worker in every round, has ``t - s = 1``.
"""

from __future__ import annotations

import torch

from stamen.clients.round_memory import RoundMemory

MOMENTUM_KEY = "worker-momentum"


def apply_worker_momentum(
    memory: RoundMemory, update: torch.Tensor, beta: float, server_round: int
) -> torch.Tensor:
    """Advance the node's momentum with ``update`` (shape (d,)) in ``server_round``."""
    before = memory.latest_before(server_round)
    momentum = update
    if before is not None:
        previous, kept = before
        momentum = beta ** (server_round - previous) * kept["m"].to(update) + update
    memory.put(server_round, {"m": momentum})
    return momentum
