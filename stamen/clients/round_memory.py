"""A node's state that advances once per round it trains (worker momentum, compression's
error-feedback memory), kept in its ``Context.state`` (kept by Flower's engines and by
SuperNodes alike) and, in a simulation, mirrored to a file (``store``) that outlives the
process a resumed run replaces.

The node keeps the state of its two latest rounds, and round ``t`` continues the latest one
before ``t``: a run resumed after round ``r`` may find this node already past ``r`` (it
trained in round ``r + 1`` before the server stopped), and must start from its state of round
``r`` or earlier.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from flwr.app import ArrayRecord, RecordDict

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class RoundMemory:
    """The node's state under ``key`` in ``state``, mirrored to ``store`` if given."""

    state: RecordDict
    key: str
    store: Path | None = None

    def latest_before(self, server_round: int) -> tuple[int, Tensors] | None:
        """The round and state of the node's latest round before ``server_round``."""
        kept = self._load()
        previous = max((r for r in kept if r < server_round), default=None)
        return None if previous is None else (previous, kept[previous])

    def put(self, server_round: int, tensors: Tensors) -> None:
        """Keep ``tensors`` as round ``server_round``'s state, beside the latest before it."""
        before = self.latest_before(server_round)
        kept = {} if before is None else {before[0]: before[1]}
        kept[server_round] = {name: value.detach().cpu() for name, value in tensors.items()}
        self.state[self.key] = ArrayRecord(
            {f"{r}/{name}": value for r, named in kept.items() for name, value in named.items()}
        )
        if self.store is not None:
            tmp = self.store.with_suffix(".tmp")
            self.store.parent.mkdir(parents=True, exist_ok=True)
            torch.save(kept, tmp)
            os.replace(tmp, self.store)

    def _load(self) -> dict[int, Tensors]:
        if self.key in self.state:
            kept: dict[int, Tensors] = {}
            for name, value in self.state[self.key].to_torch_state_dict().items():
                server_round, _, tensor = name.partition("/")
                kept.setdefault(int(server_round), {})[tensor] = value
            return kept
        if self.store is not None and self.store.exists():
            return torch.load(self.store, weights_only=True)
        return {}
