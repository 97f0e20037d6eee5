"""Two-party additive secret sharing in Z_2^64, with S1's share sent as a seed.

A client holding ``x`` (ring elements) draws a seed; S1's share is ``expand(seed)`` and
S2's is ``x - expand(seed)``. Either share alone is uniform, so it says nothing about ``x``;
their sum is ``x``. S1 receives the 32-byte seed, S2 the full share (encrypted to S2 and
relayed by S1, ``envelope``), which halves the bytes a client sends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stamen.secure.prg import expand, new_seed


@dataclass(frozen=True)
class Shares:
    seed: bytes  # S1's share, compressed
    rest: np.ndarray  # S2's share: x - expand(seed)


def share(x: np.ndarray, seed: bytes | None = None) -> Shares:
    """Split ring elements ``x`` into S1's seed and S2's share."""
    seed = seed or new_seed()
    return Shares(seed, np.asarray(x, dtype=np.uint64) - expand(seed, np.shape(x)))


def reconstruct(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.asarray(first, dtype=np.uint64) + np.asarray(second, dtype=np.uint64)
