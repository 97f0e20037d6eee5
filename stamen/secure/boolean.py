"""Two-party boolean computation on XOR-shared 64-bit words (GMW with dealer AND triples).

A secret word ``w`` is held as ``w_1 ^ w_2``. XOR, NOT, shifts and AND with a public word
are local; AND of two secret words uses one dealer triple ``(a, b, c = a & b)`` (XOR-shared):
the parties open ``x ^ a`` and ``y ^ b`` (uniform, so they reveal nothing) and each computes
its share of ``x & y``. Every bit of a word is an independent lane, so one triple word
serves 64 bit-ANDs at once.

Protocols are written once per party as generators: a party ``yield``s the words it sends
and receives the peer's words back (``run_locally`` drives both parties in one process for
tests; a transport drives them across processes).
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import numpy as np

from stamen.secure.prg import expand, new_seed

Exchange = Generator[np.ndarray, np.ndarray, np.ndarray]
ONES = np.uint64(2**64 - 1)


@dataclass(frozen=True)
class AndTriples:
    """One party's share of ``count`` triples of words of ``shape``: a, b, c = a & b."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray

    def take(self, index: int | slice) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.a[index], self.b[index], self.c[index]


def deal_and_triples(count: int, shape: tuple[int, ...]) -> tuple[AndTriples, AndTriples]:
    """The dealer's triples; the first party's share is pseudo-random (a seed's worth)."""
    full = (count, *shape)
    a, b = expand(new_seed(), full), expand(new_seed(), full)
    first = [expand(new_seed(), full) for _ in range(3)]
    second = [a ^ first[0], b ^ first[1], (a & b) ^ first[2]]
    return AndTriples(*first), AndTriples(*second)


def secret_and(
    x: np.ndarray, y: np.ndarray, triple: tuple[np.ndarray, np.ndarray, np.ndarray], first: bool
) -> Exchange:
    """This party's share of ``x & y`` (one exchange of two words per lane)."""
    a, b, c = triple
    mine = np.stack([x ^ a, y ^ b])
    theirs = yield mine
    d, e = mine ^ theirs  # opened x ^ a and y ^ b
    share = (d & b) ^ (e & a) ^ c
    return share ^ (d & e) if first else share


def reveal(word: np.ndarray) -> Exchange:
    """Open a shared word to both parties."""
    theirs = yield word
    return word ^ theirs


def run_locally(first: Exchange, second: Exchange) -> tuple[np.ndarray, np.ndarray]:
    """Drive two parties' generators against each other in one process."""
    message = (next(first), next(second))
    while True:
        try:
            sent_first = first.send(message[1])
        except StopIteration as done:
            result_first = done.value
            sent_first = None
        try:
            sent_second = second.send(message[0])
        except StopIteration as done:
            if sent_first is not None:
                raise RuntimeError("the parties' protocols ended at different rounds") from None
            return result_first, done.value
        if sent_first is None:
            raise RuntimeError("the parties' protocols ended at different rounds")
        message = (sent_first, sent_second)
