"""Fixed-point numbers in the ring Z_2^64 and exact matrix products in it.

A real ``x`` is encoded as ``round(x * 2**f) mod 2**64`` (``f = FRACTION_BITS``), held in
``numpy.uint64``, whose arithmetic wraps modulo 2**64 as the ring needs. Decoding reads the
value as a signed 64-bit integer. A product of two encodings carries ``2 f`` fraction bits,
so an inner product ``<x, y>`` decodes exactly when ``|<x, y>| * 2**(2 f) < 2**63``; with
``f = 16`` that is ``|<x, y>| < 2**31``.

Matrix products use torch's int64 matrix multiplication on the same bits: two's-complement
products and sums wrap modulo 2**64, so the result is exact in the ring (tested against
Python integers), and about 8x faster on a CPU core than splitting into float64 limbs.
"""

from __future__ import annotations

import numpy as np
import torch

FRACTION_BITS = 16


def encode(x: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Reals to ring elements (``uint64``)."""
    scaled = np.rint(np.asarray(x, dtype=np.float64) * 2.0**fraction_bits)
    return scaled.astype(np.int64).view(np.uint64)


def decode(r: np.ndarray, fraction_bits: int = FRACTION_BITS) -> np.ndarray:
    """Ring elements to reals, read as signed; ``fraction_bits`` is ``2 f`` for products."""
    return np.asarray(r, dtype=np.uint64).view(np.int64).astype(np.float64) / 2.0**fraction_bits


def ring_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b.T`` modulo 2**64 for ``uint64`` matrices ``a`` (n, d) and ``b`` (m, d)."""
    return _to_ring(_signed(a) @ _signed(b).T)


def ring_combine(weights: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``weights @ rows`` modulo 2**64: ``uint64`` weights (k,) and rows (k, d) -> (d,)."""
    return _to_ring(_signed(weights[None, :]) @ _signed(rows))[0]


def ring_matmul_signs(x: np.ndarray, signs: np.ndarray) -> np.ndarray:
    """``x @ signs.T`` modulo 2**64 for ``uint64`` ``x`` (n, d) and a sketch ``signs``
    (k, d) over {-1, 0, 1}.

    Two float64 products on the 32-bit halves of ``x`` (BLAS, about 2x faster than the
    int64 product): each half's sum is below ``2**32 * d``, exact in float64 while
    ``d <= 2**20``; beyond that the int64 product is used."""
    d = x.shape[1]
    if d > 2**20:
        return _to_ring(_signed(x) @ torch.from_numpy(np.asarray(signs, dtype=np.int64)).T)
    x = np.ascontiguousarray(x, dtype=np.uint64)
    sketch = torch.from_numpy(np.asarray(signs, dtype=np.float64)).T
    low = torch.from_numpy((x & np.uint64(0xFFFFFFFF)).astype(np.float64)) @ sketch
    high = torch.from_numpy((x >> np.uint64(32)).astype(np.float64)) @ sketch
    low, high = low.to(torch.int64).numpy().view(np.uint64), high.to(torch.int64).numpy()
    return low + (high.view(np.uint64) << np.uint64(32))


def _signed(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint64).view(np.int64))


def _to_ring(product: torch.Tensor) -> np.ndarray:
    return product.numpy().view(np.uint64)
