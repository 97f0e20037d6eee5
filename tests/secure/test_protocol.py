"""A whole secure round equals plaintext robust aggregation of the encoded inputs."""

from __future__ import annotations

import numpy as np
import torch

from stamen.algorithms.aggregation.krum import krum_scores, krum_select
from stamen.secure.boolean import run_locally
from stamen.secure.prg import expand
from stamen.secure.protocol import deal_round, server_round
from stamen.secure.ring import FRACTION_BITS, decode, encode
from stamen.secure.sharing import share

BITS = 19


def multi_krum_weights(f, m):
    def rule(distances):
        chosen = torch.sort(krum_scores(torch.from_numpy(distances), f), stable=True).indices[:m]
        weights = np.zeros(len(distances))
        weights[chosen.numpy()] = 1.0 / m
        return weights

    return rule


def secure_round(updates, rule):
    x = encode(updates)
    shares = [share(row) for row in x]
    x1 = np.stack([expand(s.seed, x.shape[1]) for s in shares])
    x2 = np.stack([s.rest for s in shares])
    d1, d2 = deal_round(*x.shape)
    return run_locally(
        server_round(x1, d1, first=True, bits=BITS),
        server_round(x2, d2, first=False, bits=BITS, rule=rule),
    )


def test_secure_multi_krum_equals_plaintext_on_the_encoded_inputs():
    rng = np.random.default_rng(0)
    updates = np.vstack([rng.normal(0, 0.05, (8, 300)), rng.normal(0.1, 0.05, (2, 300))])
    s1, s2 = secure_round(updates, multi_krum_weights(f=2, m=4))
    encoded = decode(encode(updates))  # what the clients actually shared
    chosen = krum_select(torch.from_numpy(encoded), f=2, m=4).numpy()
    assert set(np.flatnonzero(s1.weights)) == set(chosen) and s1.valid.all()
    assert np.array_equal(s1.weights, s2.weights)
    expected = encoded[chosen].mean(0)
    # each coordinate: 4 products of a weight with 2**-17 rounding and an input
    bound = 4 * 2.0 ** -(FRACTION_BITS + 1) * (np.abs(encoded).max() + 1)
    assert np.max(np.abs(s1.aggregate - expected)) <= bound
    assert s2.aggregate is None and s1.distances is None  # S1 never sees the distances
    plain = ((encoded[:, None] - encoded[None]) ** 2).sum(-1)
    assert np.allclose(s2.distances, plain, atol=1e-3)


def test_an_invalid_client_is_dropped_and_never_weighted():
    rng = np.random.default_rng(1)
    updates = rng.normal(0, 0.05, (6, 200))
    updates[2, 5] += 65536.0  # the wraparound attack
    s1, s2 = secure_round(updates, multi_krum_weights(f=1, m=3))
    assert s1.valid.tolist() == [True, True, False, True, True, True]
    assert s1.weights[2] == 0 and s2.distances.shape == (5, 5)
    assert np.abs(s1.aggregate).max() < 1.0
