"""Checkpoints: the server's state after each round, saved atomically in the run folder.

A checkpoint holds the round, the global model, and the strategy's state: the ``state``
dataclass of Stamen's strategies (e.g. the centered-clipping centre and server momentum,
Mime's optimizer state, FedDF's students) or the attributes of flwr's own (e.g. FedAvgM's
momentum vector). No random state is needed: every draw of the server (client sampling,
bucketing, simulated attacks) and of the clients is seeded from ``(seed, round, ...)``, so
round ``r + 1`` draws the same whether or not the run stopped after round ``r``. Clients'
own state (worker momentum) is kept by the nodes (``stamen.clients.worker_momentum``).

The file is a pickle: load only checkpoints of your own runs. ``CheckpointWriter`` takes the
bytes at the end of a round and writes them while the next round runs.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
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


class CheckpointWriter:
    """Saves each round's checkpoint atomically in ``out_dir``: a crash leaves the previous
    one intact. The checkpoint is serialised at once (a snapshot of the state), written in a
    background thread while the next round runs, one write at a time; a failed write is
    raised at the next ``save`` or at ``close``."""

    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / CHECKPOINT_FILE
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint")
        self._pending: Future | None = None

    def save(self, checkpoint: Checkpoint) -> None:
        data = pickle.dumps(checkpoint, protocol=pickle.HIGHEST_PROTOCOL)
        self.wait()
        self._pending = self._pool.submit(self._write, data)

    def wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown()

    def _write(self, data: bytes) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self.path)


def load_checkpoint(out_dir: Path) -> Checkpoint:
    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.exists():
        raise StamenError(f"no {CHECKPOINT_FILE} in {out_dir}: nothing to resume")
    if zipfile.is_zipfile(path):  # written by torch.save (Stamen 0.1.0 before this change)
        return torch.load(path, weights_only=False)
    with open(path, "rb") as file:
        return pickle.load(file)


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
