"""The Gram matrix of secret-shared rows with one matrix Beaver triple.

The dealer, trusted by neither server and colluding with neither, draws ``A = A_1 + A_2``
(``A_s = expand(seed_s)``, so each server gets a seed) and sends each server an additive
share ``C_s`` of ``C = A A^T``. The servers hold shares ``X_s`` of the clients' rows ``X``
(n, d). They open ``E = X - A`` (each sends ``X_s - A_s``; ``E`` is uniform, so it reveals
nothing of ``X``), and each computes

    G_s = C_s + E A_s^T + A_s E^T + E_s' E_s'^T,

where ``E_1'`` and ``E_2'`` are the first and second halves of ``E``'s columns (both know
``E``, so each computes half of ``E E^T``); the sum is ``(E + A)(E + A)^T = X X^T``.
Squared distances are then linear in ``G``: ``|x_i - x_j|^2 = G_ii + G_jj - 2 G_ij``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stamen.secure.prg import expand, new_seed
from stamen.secure.ring import ring_matmul


@dataclass(frozen=True)
class TripleShare:
    """One server's part of the triple: the seed of ``A_s`` and ``C_s``."""

    seed: bytes
    gram: np.ndarray  # C_s, (n, n)

    def mask(self, n: int, d: int) -> np.ndarray:
        return expand(self.seed, (n, d))


def deal_gram_triple(n: int, d: int) -> tuple[TripleShare, TripleShare]:
    """The dealer's triple for ``n`` rows of ``d`` ring elements."""
    seeds = new_seed(), new_seed()
    a = expand(seeds[0], (n, d)) + expand(seeds[1], (n, d))
    c = ring_matmul(a, a)
    c_first = expand(new_seed(), (n, n))
    return TripleShare(seeds[0], c_first), TripleShare(seeds[1], c - c_first)


def gram_share(
    opened: np.ndarray, mask: np.ndarray, triple: TripleShare, first: bool
) -> np.ndarray:
    """Server ``s``'s share of ``X X^T`` from the opened ``E = X - A`` and its ``A_s``."""
    cross = ring_matmul(opened, mask)
    half = opened.shape[1] // 2
    columns = opened[:, :half] if first else opened[:, half:]
    return triple.gram + cross + cross.T + ring_matmul(columns, columns)


def squared_distances(gram: np.ndarray) -> np.ndarray:
    """``|x_i - x_j|^2`` from ``G = X X^T`` (or from a share of it: the map is linear)."""
    diagonal = np.diag(gram)
    return diagonal[:, None] + diagonal[None, :] - np.uint64(2) * gram
