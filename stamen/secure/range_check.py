"""An exact two-party range check on secret-shared ring elements, with a dealer.

For additive shares of ``p`` in Z_2^64 it tells both parties whether ``p``, read as a signed
integer, lies in ``[-2**t, 2**t)``, and nothing else. The dealer gives a random ``r`` twice:
as additive shares and as XOR shares. The parties open ``c = p + 2**t + r`` (uniform, so it
hides ``p``); then ``v = c - r = p + 2**t`` and the answer is whether bits ``t+1 .. 63`` of
``v`` are all zero. ``c - r = c + ~r + 1`` is computed bitwise on the XOR shares of ``r`` by
a Kogge-Stone carry prefix (6 rounds of ANDs), the zero test by an AND tree (6 rounds), and
only the one answer bit is opened. 14 exchanges and 18 AND triples per checked value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stamen.secure.boolean import (
    ONES,
    AndTriples,
    Exchange,
    deal_and_triples,
    reveal,
    secret_and,
)
from stamen.secure.prg import expand, new_seed

_PREFIX_SPANS = (1, 2, 4, 8, 16, 32)
TRIPLES_PER_VALUE = 2 * len(_PREFIX_SPANS) + 6


@dataclass(frozen=True)
class RangeCheckShare:
    """One party's correlated randomness for checking ``m`` values."""

    additive: np.ndarray  # r's additive share, (m,)
    xor: np.ndarray  # r's XOR share, (m,)
    triples: AndTriples  # (TRIPLES_PER_VALUE, m)


def deal_range_check(m: int) -> tuple[RangeCheckShare, RangeCheckShare]:
    """The dealer's randomness for checking ``m`` values."""
    r = expand(new_seed(), m)
    additive, xor = expand(new_seed(), m), expand(new_seed(), m)
    first, second = deal_and_triples(TRIPLES_PER_VALUE, (m,))
    return (
        RangeCheckShare(additive, xor, first),
        RangeCheckShare(r - additive, r ^ xor, second),
    )


def in_range(p: np.ndarray, bits: int, randomness: RangeCheckShare, first: bool) -> Exchange:
    """Whether each shared ``p`` is in ``[-2**bits, 2**bits)`` (a bool array, both parties)."""
    if not 0 <= bits < 63:
        raise ValueError(f"bits must be in [0, 63), got {bits}")
    offset = np.uint64(2**bits) if first else np.uint64(0)
    mine = p + offset + randomness.additive
    c = mine + (yield mine)  # opened: p + 2**bits + r
    triples = randomness.triples
    y = randomness.xor ^ ONES if first else randomness.xor  # shares of ~r
    generate, propagate = c & y, (c ^ y if first else y)
    generate = generate ^ (propagate & np.uint64(1))  # the carry into bit 0 is 1
    for level, span in enumerate(_PREFIX_SPANS):
        x = np.stack([propagate, propagate])
        shifted = np.stack([generate << np.uint64(span), propagate << np.uint64(span)])
        both = yield from secret_and(
            x, shifted, triples.take(slice(2 * level, 2 * level + 2)), first
        )
        generate, propagate = generate ^ both[0], both[1]
    carries = generate << np.uint64(1)
    carries = carries ^ np.uint64(1) if first else carries
    v = (c ^ y if first else y) ^ carries
    low = np.uint64(2 ** (bits + 1) - 1)
    ones = (v ^ ONES | low) if first else (v & ~low)  # all ones iff v < 2**(bits + 1)
    for level, span in enumerate((32, 16, 8, 4, 2, 1)):
        triple = triples.take(2 * len(_PREFIX_SPANS) + level)
        ones = yield from secret_and(ones, ones >> np.uint64(span), triple, first)
    answer = yield from reveal(ones & np.uint64(1))
    return answer.astype(bool)
