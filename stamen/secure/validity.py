"""Input validity: a malicious client's shares must not make the ring arithmetic wrap.

A client may share any ring element. A coordinate such as ``2**32`` (65536.0 with 16
fraction bits) has a square of ``2**64 = 0``: its distances computed on shares come out small
and Krum would select it, while the aggregate then carries the huge value. The servers
therefore check every client's shares before they use them:

1. After all shares are in, the servers flip a common seed (neither chooses it alone) and
   expand it into a public sketch ``R`` of ``SKETCH_ROWS`` rows over {-1, 0, 1} with
   probabilities 1/4, 1/2, 1/4. They compute shares of ``p = R x`` locally (linear).
2. An exact range check (``range_check``) tells both whether every ``p_j`` lies in
   ``[-2**b, 2**b)``; nothing else about ``p`` is opened.

Soundness: if some coordinate's signed value has ``|x_k| >= 2**(b+1)``, then of the three
sketch values ``q - x_k, q, q + x_k`` that row ``j`` can give (the rest of the row fixed),
the ones with probability 1/2 or more fall outside the range, so each row rejects with
probability at least 1/2 and a client passes with probability at most ``2**-SKETCH_ROWS``.
A passing client has every ``|x_k| < 2**(b+1)``, so with ``d < 2**(59 - 2 b)`` no squared
distance between two passing clients wraps (each coordinate differs by less than
``2**(b+2)``); e.g. ``b = 19`` for ``d = 10**6``. Completeness: an honest ``|p_j|`` is at most
``||x||_1``; for random-looking updates it is about ``||x||_2 / sqrt(2)`` (clients clip
their update's norm). Local noise of std ``sigma`` adds ``d sigma^2 / 2`` to the variance of
each ``p_j``, so clipping and noise together must leave the range room
(``honest_pass_probability``); a run whose honest clients would fail is refused at load time.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

from stamen.secure.boolean import Exchange
from stamen.secure.prg import expand
from stamen.secure.range_check import RangeCheckShare, in_range
from stamen.secure.ring import FRACTION_BITS, ring_matmul_signs

SKETCH_ROWS = 64


def sketch_matrix(seed: bytes, rows: int, d: int) -> np.ndarray:
    """``int8`` (rows, d) with entries -1, 0, 0, 1 from two uniform bits each."""
    words = expand(seed, (rows, -(-d // 32)))
    pairs = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, : 2 * d]
    return pairs[:, 0::2].astype(np.int8) - pairs[:, 1::2].astype(np.int8)


def valid_rows(
    x: np.ndarray, sketch: np.ndarray, bits: int, randomness: RangeCheckShare, first: bool
) -> Exchange:
    """Per client (row of this party's share ``x``), whether its sketch is in range."""
    p = ring_matmul_signs(x, sketch)
    inside = yield from in_range(p.ravel(), bits, randomness, first)
    return inside.reshape(p.shape).all(axis=1)


def wrap_free(d: int, bits: int) -> bool:
    """Whether no squared distance between passing clients can wrap: ``d < 2**(59 - 2 b)``."""
    return d < 2 ** (59 - 2 * bits)


def largest_bits(d: int) -> float:
    """The bound on ``bits`` for ``d`` coordinates (``wrap_free`` needs ``bits`` below it)."""
    return (59 - np.log2(d)) / 2


HONEST_PASS = 0.99  # the least probability with which an honest client passes, at load time


def honest_pass_probability(d: int, bits: int, clip: float, noise: float) -> float:
    """About how likely an honest client passes all ``SKETCH_ROWS`` rows: each sketch value of
    an update of norm ``clip`` plus N(0, noise^2) noise per coordinate is close to normal with
    variance ``(clip^2 + d noise^2) / 2`` (sketch entries have ``E[r^2] = 1/2``), and must lie
    within ``2**bits`` (``2**(bits - FRACTION_BITS)`` in real units)."""
    std = np.sqrt((clip**2 + d * noise**2) / 2)
    if std == 0:
        return 1.0
    inside = 1 - 2 * NormalDist().cdf(-(2.0 ** (bits - FRACTION_BITS)) / std)
    return float(inside**SKETCH_ROWS)


def largest_noise(d: int, bits: int, clip: float) -> float:
    """The largest ``noise`` with which an honest client still passes with ``HONEST_PASS``
    (0 when clipping alone leaves no room)."""
    z = NormalDist().inv_cdf(1 - (1 - HONEST_PASS ** (1 / SKETCH_ROWS)) / 2)
    room = 2 * (2.0 ** (bits - FRACTION_BITS) / z) ** 2 - clip**2
    return float(np.sqrt(room / d)) if room > 0 else 0.0
