"""Which clients are Byzantine: a seeded, reproducible choice of partition ids."""

from __future__ import annotations

import numpy as np

from stamen.errors import ConfigError

# A fixed spawn key gives this choice its own stream, independent of other uses of the seed.
_STREAM = (0x42595A,)  # "BYZ"


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
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=_STREAM))
    return np.sort(rng.choice(num_clients, size=num_byzantine, replace=False)).astype(np.int64)
