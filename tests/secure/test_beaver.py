"""Shares, the seed-compressed share and the Gram matrix with one Beaver triple."""

from __future__ import annotations

import numpy as np

from stamen.secure.beaver import deal_gram_triple, gram_share, squared_distances
from stamen.secure.prg import expand, new_seed
from stamen.secure.ring import FRACTION_BITS, decode, encode, ring_matmul
from stamen.secure.sharing import reconstruct, share


def test_shares_reconstruct_and_differ_with_the_seed():
    x = encode(np.array([1.0, -2.0, 3.5]))
    first, second = share(x), share(x)
    assert first.seed != second.seed and not np.array_equal(first.rest, second.rest)
    assert np.array_equal(reconstruct(expand(first.seed, 3), first.rest), x)


def test_the_prg_is_deterministic_per_seed():
    seed = new_seed()
    assert np.array_equal(expand(seed, (2, 5)), expand(seed, (2, 5)))
    assert not np.array_equal(expand(seed, 10), expand(new_seed(), 10))


def test_gram_shares_sum_to_the_gram_matrix_and_give_the_distances():
    rng = np.random.default_rng(0)
    updates = rng.normal(size=(5, 40))
    x = encode(updates)
    n, d = x.shape
    shares = [share(row) for row in x]
    x_first = np.stack([expand(s.seed, d) for s in shares])  # S1 expands the seeds
    x_second = np.stack([s.rest for s in shares])
    t_first, t_second = deal_gram_triple(n, d)
    a_first, a_second = t_first.mask(n, d), t_second.mask(n, d)
    opened = (x_first - a_first) + (x_second - a_second)  # E = X - A, both halves sent
    g_first = gram_share(opened, a_first, t_first, first=True)
    g_second = gram_share(opened, a_second, t_second, first=False)
    assert np.array_equal(g_first + g_second, ring_matmul(x, x))
    distances = decode(squared_distances(g_first) + squared_distances(g_second), 2 * FRACTION_BITS)
    expected = ((updates[:, None] - updates[None]) ** 2).sum(-1)
    assert np.allclose(distances, expected, atol=1e-2)
