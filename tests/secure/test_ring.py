"""Fixed point in Z_2^64 and the exact ring matrix product."""

from __future__ import annotations

import numpy as np
import pytest

from stamen.secure.ring import FRACTION_BITS, decode, encode, ring_matmul


def reference_matmul(a, b):
    """a @ b.T modulo 2**64 with Python integers."""
    a, b = a.astype(object), b.astype(object)
    return ((a @ b.T) % 2**64).astype(np.uint64)


def test_encode_decode_round_trip_within_half_a_unit_in_the_last_place():
    x = np.array([0.0, 1.5, -2.25, 1e-6, -12345.678, 3.0e4])
    assert np.max(np.abs(decode(encode(x)) - x)) <= 2.0 ** -(FRACTION_BITS + 1)
    assert encode(np.array([-1.0]))[0] == np.uint64(2**64 - 2**FRACTION_BITS)  # two's complement


def test_ring_matmul_is_exact_modulo_2_64():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2**64, size=(4, 9), dtype=np.uint64)
    b = rng.integers(0, 2**64, size=(3, 9), dtype=np.uint64)
    assert np.array_equal(ring_matmul(a, b), reference_matmul(a, b))


def test_ring_matmul_is_exact_on_long_rows_of_extreme_values():
    a = np.full((2, 5000), 2**64 - 1, dtype=np.uint64)  # -1 everywhere
    a[1] = np.uint64(2**63)
    assert np.array_equal(ring_matmul(a, a), reference_matmul(a, a))


def test_products_of_encodings_decode_with_twice_the_fraction_bits():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(3, 50)), rng.normal(size=(2, 50))
    product = decode(ring_matmul(encode(x), encode(y)), 2 * FRACTION_BITS)
    # each coordinate carries an encoding error of at most 2**-17 per factor
    bound = 50 * 2.0 ** -(FRACTION_BITS + 1) * (np.abs(x).max() + np.abs(y).max() + 1)
    assert np.max(np.abs(product - x @ y.T)) <= bound
    assert np.max(np.abs(product - x @ y.T)) == pytest.approx(0, abs=1e-2)
