"""Which clients are Byzantine: a seeded, reproducible choice of partition ids."""

from __future__ import annotations

import numpy as np

from stamen.errors import ConfigError
from stamen.seeding import RunStream, run_rng


def byzantine_clients(num_clients: int, num_byzantine: int, seed: int) -> np.ndarray:
    """Sorted partition ids of the Byzantine clients (``ndarray of int64, shape (f,)``).

    The same ``(num_clients, num_byzantine, seed)`` always gives the same ids. Robust
    aggregation needs an honest majority, so ``0 <= num_byzantine < num_clients / 2``.
    """
    if num_clients < 1:
        raise ConfigError(f"num_clients must be >= 1, got {num_clients}")
    if not 0 <= num_byzantine < num_clients / 2:
        raise ConfigError(
            f"num_byzantine must satisfy 0 <= num_byzantine < num_clients / 2 = "
            f"{num_clients / 2:g}, "
            f"got {num_byzantine}"
        )
    rng = run_rng(seed, RunStream.BYZANTINE_CLIENTS)
    return np.sort(rng.choice(num_clients, size=num_byzantine, replace=False)).astype(np.int64)
