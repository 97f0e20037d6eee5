"""Checkpoints: the server's state after each round, saved atomically in the run folder.

A checkpoint holds the round, the global model, and the strategy's state: the ``state``
dataclass of Stamen's strategies (e.g. the centered-clipping centre and server momentum,
Mime's optimizer state, FedDF's students) or the attributes of flwr's own (e.g. FedAvgM's
momentum vector). No random state is needed: every draw of the server (client sampling,
bucketing, simulated attacks) and of the clients is seeded from ``(seed, round, ...)``, so
round ``r + 1`` draws the same whether or not the run stopped after round ``r``. The state
of wrappers around the strategy that keep one (the compressed downlink's model and memory)
is saved beside it. Clients' own state (worker momentum, compression memory) is kept by the
nodes (``stamen.clients.round_memory``).

The file is ``torch.save`` of plain values and tensors (``state_encoding``), read back with
``torch.load(weights_only=True)``: loading a checkpoint never imports or calls code, so a
checkpoint from elsewhere is safe to resume. Older pickle checkpoints are refused with one
line. ``CheckpointWriter`` takes the bytes at the end of a round and writes them while the
next round runs.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord
from flwr.serverapp.strategy import Strategy

from stamen.errors import StamenError
from stamen.simulations.results import CHECKPOINT_FILE
from stamen.simulations.state_encoding import decode, encode
from stamen.strategies.wrapper import StrategyWrapper

FORMAT = "stamen-checkpoint/1"


@dataclass(frozen=True)
class Checkpoint:
    round: int
    arrays: ArrayRecord
    strategy_state: Any
    wrapper_states: dict[str, Any] = field(default_factory=dict)  # by the wrapper's class


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
        data = _serialise(checkpoint)
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
    """The checkpoint in ``out_dir``, read without running any code from the file."""
    path = Path(out_dir) / CHECKPOINT_FILE
    if not path.exists():
        raise StamenError(f"no {CHECKPOINT_FILE} in {out_dir}: nothing to resume")
    refused = (
        f"{path} cannot be loaded safely: it is not a checkpoint of this Stamen (older ones "
        f"were pickles, which can run code); delete it and run afresh"
    )
    if not zipfile.is_zipfile(path):  # a pickle, or torch's legacy format
        raise StamenError(refused)
    try:
        content = torch.load(path, weights_only=True)
    except pickle.UnpicklingError as exc:  # it names a class or function: refused unread
        raise StamenError(refused) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise StamenError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise StamenError(refused)
    try:
        checkpoint = Checkpoint(
            content["round"],
            decode(content["arrays"]),
            decode(content["strategy_state"]),
            decode(content.get("wrapper_states", {})),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise StamenError(f"{path}: {exc}; delete it and run afresh") from exc
    if type(checkpoint.round) is not int or not isinstance(checkpoint.arrays, ArrayRecord):
        raise StamenError(f"{path}: no round number or model; delete it and run afresh")
    return checkpoint


def _serialise(checkpoint: Checkpoint) -> bytes:
    content = {
        "format": FORMAT,
        "round": checkpoint.round,
        "arrays": encode(checkpoint.arrays),
        "strategy_state": encode(checkpoint.strategy_state),
        "wrapper_states": encode(checkpoint.wrapper_states),
    }
    buffer = io.BytesIO()
    torch.save(content, buffer)
    return buffer.getvalue()


def strategy_state(strategy: Strategy) -> Any:
    """The state of the strategy inside any wrappers: its ``state``, or the attributes of
    flwr's own strategies but their functions (metric aggregation), which the resumed run's
    strategy gets from its constructor as before."""
    inner = _innermost(strategy)
    if hasattr(inner, "state"):
        return inner.state
    return {key: value for key, value in vars(inner).items() if not callable(value)}


def restore_strategy_state(strategy: Strategy, state: Any) -> None:
    inner = _innermost(strategy)
    if hasattr(inner, "state"):
        inner.state = state
    else:
        vars(inner).update(state)


def wrapper_states(strategy: Strategy) -> dict[str, Any]:
    """The ``state`` of each wrapper around the strategy that has one (the compressed
    downlink's), by the wrapper's class name."""
    states = {}
    while isinstance(strategy, StrategyWrapper):
        if hasattr(strategy, "state"):
            states[type(strategy).__name__] = strategy.state
        strategy = strategy.strategy
    return states


def restore_wrapper_states(strategy: Strategy, states: dict[str, Any]) -> None:
    while isinstance(strategy, StrategyWrapper):
        if type(strategy).__name__ in states:
            strategy.state = states[type(strategy).__name__]
        strategy = strategy.strategy


def _innermost(strategy: Strategy) -> Strategy:
    while isinstance(strategy, StrategyWrapper):
        strategy = strategy.strategy
    return strategy
