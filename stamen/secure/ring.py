"""Fixed-point numbers in the ring Z_2^64 and exact matrix products in it.

A real ``x`` is encoded as ``round(x * 2**f) mod 2**64`` (``f = FRACTION_BITS``), held in
``numpy.uint64``, whose arithmetic wraps modulo 2**64 as the ring needs. Decoding reads the
value as a signed 64-bit integer. A product of two encodings carries ``2 f`` fraction bits,
so an inner product ``<x, y>`` decodes exactly when ``|<x, y>| * 2**(2 f) < 2**63``; with
``f = 16`` that is ``|<x, y>| < 2**31``.

``ring_matmul`` computes ``a @ b.T mod 2**64`` exactly with floating-point BLAS: both sides
are split into four 16-bit limbs; a product of two limbs summed over at most ``2**21``
columns stays below ``2**53``, where float64 is exact; limb pairs whose shift is 64 bits or
more vanish modulo ``2**64``, leaving 10 of the 16 products.
"""

from __future__ import annotations

import numpy as np

FRACTION_BITS = 16
LIMB_BITS, LIMBS = 16, 4
_EXACT_COLUMNS = 2 ** (53 - 2 * LIMB_BITS)  # limb products summed exactly in float64


def encode(x: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Reals to ring elements (``uint64``)."""
    scaled = np.rint(np.asarray(x, dtype=np.float64) * 2.0**fraction_bits)
    return scaled.astype(np.int64).view(np.uint64)


def decode(r: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Ring elements to reals, read as signed; ``fraction_bits`` is ``2 f`` for products."""
    return np.asarray(r, dtype=np.uint64).view(np.int64).astype(np.float64) / 2.0**fraction_bits


def ring_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` modulo 2**64 for ``uint64`` matrices ``a`` (n, d) and ``b`` (m, d)."""
    a_limbs, b_limbs = _limbs(a), _limbs(b)
    out = np.zeros((a.shape[0], b.shape[0]), dtype=np.uint64)
    for i in range(LIMBS):
        for j in range(LIMBS - i):
            product = np.zeros_like(out)
            for start in range(0, a.shape[1], _EXACT_COLUMNS):
                block = slice(start, start + _EXACT_COLUMNS)
                product += (a_limbs[i][:, block] @ b_limbs[j][:, block].T).astype(np.uint64)
            out += product << np.uint64(LIMB_BITS * (i + j))
    return out


def ring_matmul_signs(x: np.ndarray, signs: np.ndarray, block: int = 65536) -> np.ndarray:
    """``x @ signs.T`` modulo 2**64 for ``uint64`` ``x`` (n, d) and ``signs`` (k, d) with
    entries in {-1, 0, 1}: two 32-bit limbs of ``x`` suffice (sums below 2**52 for
    ``d < 2**20`` per block), computed ``block`` columns at a time to bound memory."""
    out = np.zeros((x.shape[0], signs.shape[0]), dtype=np.uint64)
    for start in range(0, x.shape[1], block):
        part = np.asarray(x[:, start : start + block], dtype=np.uint64)
        weights = signs[:, start : start + block].astype(np.float64).T
        for shift in (0, 32):
            limb = ((part >> np.uint64(shift)) & np.uint64(2**32 - 1)).astype(np.float64)
            exact = (limb @ weights).astype(np.int64).view(np.uint64)
            out += exact << np.uint64(shift)
    return out


def _limbs(x: np.ndarray) -> list[np.ndarray]:
    mask = np.uint64(2**LIMB_BITS - 1)
    x = np.asarray(x, dtype=np.uint64)
    return [((x >> np.uint64(LIMB_BITS * k)) & mask).astype(np.float64) for k in range(LIMBS)]
