"""The sketch check stops inputs that would wrap around the ring."""

from __future__ import annotations

import numpy as np
import pytest

from stamen.secure.prg import new_seed
from stamen.secure.ring import encode, ring_matmul_signs
from stamen.secure.validity import sketch_matrix

D = 1000


def reference(x, signs):
    return ((x.astype(object) @ signs.astype(object).T) % 2**64).astype(np.uint64)


def test_ring_product_with_a_sign_matrix_is_exact():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2**64, (3, 50), dtype=np.uint64)
    signs = rng.integers(-1, 2, (4, 50)).astype(np.int8)
    assert np.array_equal(ring_matmul_signs(x, signs), reference(x, signs))


@pytest.mark.parametrize("d", [2**20, 2**20 + 1])
def test_ring_product_with_a_sign_matrix_is_exact_at_the_largest_sums(d):
    # every 32-bit half at its maximum and every sign the same: the largest float64 sums
    x = np.full((2, d), 2**64 - 1, dtype=np.uint64)
    x[1, ::3] = 2**63
    signs = np.ones((2, d), dtype=np.int8)
    signs[1] = -1
    expected = np.array(
        [[(int(v) * d * s) % 2**64 for s in (1, -1)] for v in (2**64 - 1, 0)], dtype=object
    )
    expected[1] = [
        ((2**63 * len(range(0, d, 3)) + (2**64 - 1) * (d - len(range(0, d, 3)))) * s) % 2**64
        for s in (1, -1)
    ]
    assert np.array_equal(ring_matmul_signs(x, signs), expected.astype(np.uint64))


def test_sketch_entries_are_minus_one_zero_one_with_quarter_half_quarter():
    seed = new_seed()
    sketch = sketch_matrix(seed, 64, 5000)
    assert sketch.shape == (64, 5000) and np.array_equal(sketch, sketch_matrix(seed, 64, 5000))
    share = [(sketch == v).mean() for v in (-1, 0, 1)]
    assert share == pytest.approx([0.25, 0.5, 0.25], abs=0.01)


def honest(seed):
    return encode(np.random.default_rng(seed).normal(0, 0.05, D))  # |x|_2 ~ 1.6


def with_added(update, changes):
    added = np.zeros_like(update)
    for k, value in changes.items():
        added[k] = np.uint64(value % 2**64)
    return update + added  # array arithmetic wraps modulo 2**64 without a warning


@pytest.mark.parametrize(
    "changes",
    [
        {3: 2**32},  # 65536.0: its square wraps to 0
        {3: 2**63},  # vanishes when doubled
        {3: 2**32, 4: -(2**32)},  # cancels in any row that sums both with one sign
        {3: -(2**40)},
        {3: 2**21},  # just above the guaranteed bound 2**(BITS + 1)
        {k: 2**16 for k in range(D)},  # 1.0 everywhere: no wrap, but a norm far beyond the clip
    ],
)
def test_wrapping_and_oversized_inputs_are_rejected_honest_ones_pass(changes, sketch_check):
    updates = [honest(0), with_added(honest(1), changes), honest(2)]
    assert sketch_check(updates) == [True, False, True]
