"""Checkpoints: the server's state after each round, saved atomically in the run folder.

A checkpoint holds the round, the global model, and the strategy's state: the ``state``
dataclass of Stamen's strategies (e.g. the centered-clipping centre and server momentum,
Mime's optimizer state, FedDF's students) or the attributes of flwr's own (e.g. FedAvgM's
momentum vector). No random state is needed: every draw of the server (client sampling,
bucketing, simulated attacks) and of the clients is seeded from ``(seed, round, ...)``, so
round ``r + 1`` draws the same whether or not the run stopped after round ``r``. Clients'
own state (worker momentum) is kept by the nodes (``stamen.clients.worker_momentum``).

The file is a pickle (``torch.save``): load only checkpoints of your own runs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import Strategy

from stamen.errors import StamenError
from stamen.simulations.results import CHECKPOINT_FILE
from stamen.strategies.wrapper import StrategyWrapper


@dataclass(frozen=True)
class Checkpoint:
    round: int
    arrays: ArrayRecord
    strategy_state: Any


def save_checkpoint(out_dir: Path, checkpoint: Checkpoint) -> None:
    """Write ``checkpoint.pt`` atomically: a crash leaves the previous one intact."""
    path = Path(out_dir) / CHECKPOINT_FILE
    tmp = path.with_suffix(".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def load_checkpoint(out_dir: Path) -> Checkpoint:
    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.exists():
        raise StamenError(f"no {CHECKPOINT_FILE} in {out_dir}: nothing to resume")
    return torch.load(path, weights_only=False)


def strategy_state(strategy: Strategy) -> Any:
    """The state of the strategy inside any wrappers."""
    inner = _innermost(strategy)
    return inner.state if hasattr(inner, "state") else dict(vars(inner))


def restore_strategy_state(strategy: Strategy, state: Any) -> None:
    inner = _innermost(strategy)
    if hasattr(inner, "state"):
        inner.state = state
    else:
        vars(inner).update(state)


def _innermost(strategy: Strategy) -> Strategy:
    while isinstance(strategy, StrategyWrapper):
        strategy = strategy.strategy
    return strategy
