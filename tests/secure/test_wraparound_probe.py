"""The probe of the issue: without a validity check, Krum on ring distances selects a
client that adds 65536.0 to one coordinate; plaintext Krum and the sketch check reject it."""

from __future__ import annotations

import numpy as np
import torch

from stamen.algorithms.aggregation.krum import krum_scores, krum_select
from stamen.secure.beaver import squared_distances
from stamen.secure.ring import FRACTION_BITS, decode, encode, ring_matmul


def test_krum_on_ring_distances_selects_the_wrapping_client_the_check_stops_it(sketch_check):
    rng = np.random.default_rng(0)
    honest = rng.normal(0, 0.05, (7, 1000))
    attacker = honest.mean(0)
    attacker[3] = honest[:, 3].min() - 0.01  # below every honest value at coordinate 3
    attacker[3] += 65536.0  # encoded as + 2**32: its square wraps to 0
    updates = np.vstack([honest, attacker])
    x = encode(updates)
    ring = decode(squared_distances(ring_matmul(x, x)), 2 * FRACTION_BITS)
    chosen_on_ring = int(torch.argmin(krum_scores(torch.from_numpy(ring), f=1)))
    assert chosen_on_ring == 7  # garbage (negative) distances: the attacker wins
    assert int(krum_select(torch.from_numpy(updates), f=1, m=1)[0]) != 7  # plaintext rejects
    assert sketch_check(list(x)) == [True] * 7 + [False]
