"""One round of secure two-server robust aggregation, as each server runs it.

He, Karimireddy, Jaggi, "Secure Byzantine-Robust Machine Learning" (arXiv 2006.04747). S1
holds its shares of the clients' encoded updates (expanded from the clients' seeds), S2 the
other shares (opened from their envelopes); each has its part of the dealer's randomness.

1. Coin flip: each server draws a seed and sends it; the sketch seed is their XOR, fixed
   only after every client's shares are in.
2. Validity (``validity``): rows whose sketch leaves the range are dropped by both.
3. Gram (``beaver``): open ``E = X - A`` over the kept rows; each computes its share ``G_s``.
4. S1 sends S2 its share of the squared distances; S2 decodes the distances, applies the
   robust rule (``rule(distances) -> weights``, e.g. bucketing then Krum) and sends S1 the
   weights.
5. Each server forms ``sum_i w_i X_s,i`` on its shares (weights in fixed point); S2 sends
   its share to S1, which alone reconstructs the aggregate.

What each party learns: S2 the pairwise squared distances of the valid updates, the
weights, and which clients failed the check; S1 the weights, which clients failed, and the
aggregate. Neither sees an individual update: everything else it receives is uniform
(shares, ``E``, opened masks) or one accept bit per sketch row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stamen.secure.beaver import TripleShare, deal_gram_triple, gram_share, squared_distances
from stamen.secure.boolean import AndTriples, Exchange
from stamen.secure.prg import new_seed
from stamen.secure.range_check import RangeCheckShare, deal_range_check
from stamen.secure.ring import FRACTION_BITS, decode, encode, ring_combine
from stamen.secure.validity import (
    SKETCH_ROWS,
    largest_bits,
    sketch_matrix,
    valid_rows,
    wrap_free,
)

_NOTHING = np.zeros(0, dtype=np.uint64)


@dataclass(frozen=True)
class DealerShare:
    """One server's randomness for one round of ``n`` clients and ``d`` coordinates."""

    range_check: RangeCheckShare  # for the n * SKETCH_ROWS sketch values
    triple: TripleShare  # for the Gram matrix of the n rows


def dealer_message(share: DealerShare) -> dict[str, np.ndarray | bytes]:
    """A dealer share as a channel message (``channel.pack``)."""
    check, triple = share.range_check, share.triple
    return {
        "additive": check.additive,
        "xor": check.xor,
        "a": check.triples.a,
        "b": check.triples.b,
        "c": check.triples.c,
        "seed": triple.seed,
        "gram": triple.gram,
    }


def dealer_share(message: dict) -> DealerShare:
    """The inverse of ``dealer_message``."""
    triples = AndTriples(message["a"], message["b"], message["c"])
    check = RangeCheckShare(message["additive"], message["xor"], triples)
    return DealerShare(check, TripleShare(message["seed"], message["gram"]))


def deal_round(n: int, d: int) -> tuple[DealerShare, DealerShare]:
    """The dealer's part. The Gram triple covers all ``n`` rows; rows dropped by the
    validity check simply drop their rows of ``A`` and of ``C``."""
    checks, triples = deal_range_check(n * SKETCH_ROWS), deal_gram_triple(n, d)
    return DealerShare(checks[0], triples[0]), DealerShare(checks[1], triples[1])


@dataclass(frozen=True)
class RoundResult:
    valid: np.ndarray  # (n,) bool: passed the validity check
    weights: np.ndarray  # (n,) the rule's weights (0 for invalid rows)
    aggregate: np.ndarray | None  # S1 only: sum_i w_i x_i, decoded
    distances: np.ndarray | None  # S2 only: squared distances among the valid rows


def server_round(
    x: np.ndarray,
    dealer: DealerShare,
    first: bool,
    bits: int,
    rule: Callable[[np.ndarray], np.ndarray] | None = None,
    usable: np.ndarray | None = None,
) -> Exchange:
    """Server S1 (``first``) or S2's side of one round on its shares ``x`` (n, d).

    ``bits``: the validity range ``[-2**bits, 2**bits)`` of each sketch value. S2 passes
    the ``rule`` mapping squared distances (k, k) of the k valid rows to their weights.
    ``usable`` marks rows both servers agreed to drop beforehand (e.g. an envelope S2
    could not open); they count as invalid.
    """
    n, d = x.shape
    if not wrap_free(d, bits):
        raise ValueError(f"d = {d} needs bits < {largest_bits(d):.1f} to rule out wrap")
    seed = new_seed()
    other = yield np.frombuffer(seed, np.uint64)
    sketch_seed = bytes(a ^ b for a, b in zip(seed, other.tobytes(), strict=True))
    sketch = sketch_matrix(sketch_seed, SKETCH_ROWS, d)
    valid = yield from valid_rows(x, sketch, bits, dealer.range_check, first)
    valid = valid if usable is None else valid & usable
    rows = np.flatnonzero(valid)
    mask = dealer.triple.mask(n, d)[rows]
    kept = x[rows]
    mine = kept - mask
    opened = mine + (yield mine)  # E = X - A over the valid rows
    triple = TripleShare(dealer.triple.seed, dealer.triple.gram[np.ix_(rows, rows)])
    gram = gram_share(opened, mask, triple, first)
    theirs = yield (squared_distances(gram) if first else _NOTHING)
    weights = np.zeros(n)
    distances = None
    if not first:
        distances = decode(squared_distances(gram) + theirs.reshape(gram.shape), 2 * FRACTION_BITS)
        weights[rows] = rule(distances) if len(rows) else []
    received = yield (_NOTHING if first else _pack(weights))
    if first:
        weights = _unpack(received)
    share = ring_combine(encode(weights[rows]), kept) if len(rows) else np.zeros(d, np.uint64)
    theirs = yield (_NOTHING if first else share)
    aggregate = decode(share + theirs, 2 * FRACTION_BITS) if first else None
    return RoundResult(valid, weights, aggregate, distances)


def _pack(weights: np.ndarray) -> np.ndarray:
    return np.asarray(weights, dtype=np.float64).view(np.uint64)


def _unpack(words: np.ndarray) -> np.ndarray:
    return np.asarray(words, dtype=np.uint64).view(np.float64)
