"""What the shares and S1's view reveal: nothing about an individual update."""

from __future__ import annotations

import numpy as np

from stamen.secure.boolean import run_locally
from stamen.secure.prg import expand
from stamen.secure.protocol import deal_round, server_round
from stamen.secure.ring import encode
from stamen.secure.sharing import share, split

KS_CRITICAL = 1.95  # Kolmogorov-Smirnov at significance ~0.001


def fair_coin(ones: int, count: int) -> bool:
    return abs(ones - count / 2) < 5 * np.sqrt(count / 4)


def ks_uniform(sample: np.ndarray, high: float) -> float:
    """Kolmogorov-Smirnov distance of ``sample`` to the uniform law on [0, high)."""
    ordered = np.sort(sample) / high
    n = len(ordered)
    return float(max((np.arange(1, n + 1) / n - ordered).max(), (ordered - np.arange(n) / n).max()))


def ks_two_sample(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.sort(np.concatenate([a, b]))
    cdf = [np.searchsorted(np.sort(x), grid, side="right") / len(x) for x in (a, b)]
    return float(np.abs(cdf[0] - cdf[1]).max())


def test_each_share_is_uniform_exhaustively_on_a_small_ring():
    ring = np.arange(256, dtype=np.uint8)
    for x in ring:  # S1's mask uniform over Z_2^8 -> S2's share uniform, for every x
        shares = split(np.full(256, x, dtype=np.uint8), ring)
        assert np.array_equal(np.sort(shares), ring)
    x = np.array([7], dtype=np.uint8)
    assert share(x).rest.dtype == np.uint8  # the code path clients use, in Z_2^8


def test_shares_of_two_different_inputs_look_alike_on_z_2_64():
    count = 20_000
    bits = [
        np.unpackbits(share(np.full(count, v, np.uint64)).rest.view(np.uint8)).reshape(count, 64)
        for v in (0, 2**63 + 12345)
    ]
    for sample in bits:  # every bit of the share is a fair coin
        assert all(fair_coin(int(ones), count) for ones in sample.sum(axis=0))
    for position in range(64):  # the same distribution whatever was shared
        difference = int(bits[0][:, position].sum()) - int(bits[1][:, position].sum())
        assert abs(difference) < 5 * np.sqrt(count / 2)


def s1_view(updates):
    """Everything S1 receives in one round (peer messages), with its own shares."""
    x = encode(updates)
    shares = [share(row) for row in x]
    x1 = np.stack([expand(s.seed, x.shape[1]) for s in shares])
    x2 = np.stack([s.rest for s in shares])
    d1, d2 = deal_round(*x.shape)
    received = []

    def recorded(protocol):
        message = next(protocol)
        try:
            while True:
                theirs = yield message
                received.append(theirs)
                message = protocol.send(theirs)
        except StopIteration as done:
            return done.value

    def rule(distances):
        weights = np.zeros(len(distances))
        weights[:2] = 0.5  # the same weights for both input sets
        return weights

    run_locally(
        recorded(server_round(x1, d1, first=True, bits=19)),
        server_round(x2, d2, first=False, bits=19, rule=rule),
    )
    return received


def test_s1_view_has_the_same_distribution_for_two_input_sets():
    """Inputs differing in a client that is not chosen: S1's output (weights, aggregate)
    is the same, so everything else it receives must be distributed alike. We compare
    the opened E = X - A of that client across many runs: uniform in both cases."""
    rng = np.random.default_rng(0)
    base = rng.normal(0, 0.05, (4, 64))
    other = base.copy()
    other[3] = rng.normal(0, 0.05, 64)  # client 3 differs and is never chosen
    samples = {}
    for name, updates in (("base", base), ("other", other)):
        tops = []
        for _ in range(150):
            view = s1_view(updates)
            opened = [m for m in view if m.shape == (4, 64)][0]  # S2's half of E
            tops.append((opened[3] >> np.uint64(48)).astype(np.float64))
        samples[name] = np.concatenate(tops)
    n = len(samples["base"])
    for name in samples:
        assert ks_uniform(samples[name], 2**16) < KS_CRITICAL / np.sqrt(n), name
    assert ks_two_sample(samples["base"], samples["other"]) < KS_CRITICAL * np.sqrt(2 / n)
