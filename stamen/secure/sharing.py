"""Two-party additive secret sharing in Z_2^k, with S1's share sent as a seed.

A client holding ``x`` (ring elements) draws a seed; S1's share is ``expand(seed)`` and
S2's is ``x - expand(seed)``. Either share alone is uniform, so it says nothing about ``x``;
their sum is ``x``. S1 receives the 32-byte seed, S2 the full share (encrypted to S2 and
relayed by S1, ``envelope``), which halves the bytes a client sends. The ring is that of
``x``'s unsigned dtype (``uint64`` for Z_2^64; smaller ones serve exhaustive tests).
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
    x = np.asarray(x)
    return Shares(seed, split(x, expand(seed, x.shape).astype(x.dtype)))


def split(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """S2's share ``x - mask`` when S1's is ``mask`` (wrapping in ``x``'s ring)."""
    return np.asarray(x) - np.asarray(mask, dtype=np.asarray(x).dtype)


def reconstruct(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.asarray(first) + np.asarray(second)
