"""The exact range check on shares, and the boolean AND it is built from."""

from __future__ import annotations

import numpy as np
import pytest

from stamen.secure.boolean import deal_and_triples, run_locally, secret_and
from stamen.secure.prg import expand, new_seed
from stamen.secure.range_check import deal_range_check, in_range


def test_secret_and_of_xor_shared_words():
    rng = np.random.default_rng(0)
    x, y = (rng.integers(0, 2**64, 5, dtype=np.uint64) for _ in range(2))
    x1, y1 = expand(new_seed(), 5), expand(new_seed(), 5)
    t1, t2 = deal_and_triples(1, (5,))
    z1, z2 = run_locally(
        secret_and(x1, y1, t1.take(0), first=True),
        secret_and(x ^ x1, y ^ y1, t2.take(0), first=False),
    )
    assert np.array_equal(z1 ^ z2, x & y)


def check(values, bits):
    p = np.asarray(values, dtype=np.int64).view(np.uint64)
    p1 = expand(new_seed(), len(p))
    r1, r2 = deal_range_check(len(p))
    a1, a2 = run_locally(in_range(p1, bits, r1, first=True), in_range(p - p1, bits, r2, False))
    assert np.array_equal(a1, a2)  # both parties learn the same answer
    return a1.tolist()


def test_edges_of_the_range_are_exact():
    t = 20
    inside = [0, 1, -1, 2**t - 1, -(2**t), 12345, -54321]
    outside = [2**t, -(2**t) - 1]
    assert check(inside + outside, t) == [True] * len(inside) + [False] * len(outside)


@pytest.mark.parametrize(
    "value",
    [2**32, 2**63 - 1, -(2**63), 2**62, 3 * 2**40, 2**21, -(2**21) - 5],
)
def test_large_and_wrapping_values_are_rejected(value):
    # 65536.0 encoded with 16 fraction bits is 2**32, whose square wraps to 0 mod 2**64
    assert check([value, 7], 20) == [False, True]


def test_random_values_agree_with_plaintext():
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [rng.integers(-(2**25), 2**25, 500), rng.integers(-(2**62), 2**62, 100)]
    )
    expected = ((values >= -(2**24)) & (values < 2**24)).tolist()
    assert check(values, 24) == expected
