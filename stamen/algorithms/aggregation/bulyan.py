"""Bulyan (El Mhamdi, Guerraoui, Rouault, ICML 2018, arXiv 1802.07927).

Select ``theta = n - 2f`` inputs by iterated Krum (pick the best Krum score, remove it, re-score
the rest with ``max(1, n' - f - 2)`` neighbours, as flwr's legacy ``aggregate_bulyan``), then per
coordinate average the ``beta = theta - 2f`` selected values closest to the selected median
(ties at the window edge: the lower window).
Needs n >= 4f + 3. flwr's message-based ``Bulyan`` instead takes the theta best of ONE Multi-Krum
scoring (no re-scoring), which may select a different set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stamen.algorithms.aggregation.base import (
    AGGREGATORS,
    check_updates,
    require,
    require_count,
)
from stamen.algorithms.aggregation.coordinatewise import median_of_sorted
from stamen.algorithms.aggregation.krum import krum_scores
from stamen.algorithms.aggregation.primitives import sorted_columns, squared_distances


def iterated_krum(distances: Tensor, f: int, count: int) -> list[int]:
    """Indices chosen by ``count`` rounds of Krum over squared distances (n, n)."""
    remaining = list(range(distances.shape[0]))
    chosen: list[int] = []
    for _ in range(count):
        index = torch.tensor(remaining, device=distances.device)
        sub = distances.index_select(0, index).index_select(1, index)
        best = int(torch.argmin(krum_scores(sub, f)))
        chosen.append(remaining.pop(best))
    return chosen


@AGGREGATORS.register("bulyan")
@dataclass(frozen=True)
class Bulyan:
    """Iterated-Krum selection of n - 2f inputs, then a median-centred trimmed mean."""

    f: int

    def __post_init__(self) -> None:
        require_count("bulyan: f", self.f)

    def check(self, num_inputs: int) -> None:
        require(
            num_inputs >= 4 * self.f + 3,
            f"bulyan needs n >= 4f + 3 inputs, got n={num_inputs} with f={self.f}",
        )

    def aggregate(self, updates: Tensor, state: Any = None) -> tuple[Tensor, None]:
        check_updates(updates)
        n = updates.shape[0]
        self.check(n)
        theta = n - 2 * self.f
        beta = theta - 2 * self.f
        distances = squared_distances(updates)
        chosen = torch.tensor(iterated_krum(distances, self.f, theta), device=updates.device)
        ordered = sorted_columns(updates.index_select(0, chosen)).to(updates.device)
        return mean_of_closest(ordered, median_of_sorted(ordered), beta), None


def mean_of_closest(ordered: Tensor, centre: Tensor, count: int) -> Tensor:
    """Per coordinate, the mean of the ``count`` values closest to ``centre``; shape (d,).

    ``ordered`` (k, d) is sorted per column, so the closest values form a window
    ``ordered[j : j + count]``: the one whose farther end is nearest to the centre (the k-th
    smallest distance). Only the k - count + 1 windows are looped over, with running sums.
    """

    def reach(start: int) -> Tensor:
        return torch.maximum(
            (ordered[start] - centre).abs(), (ordered[start + count - 1] - centre).abs()
        )

    window = ordered[:count].sum(dim=0)
    best_sum, best_reach = window, reach(0)
    for start in range(1, ordered.shape[0] - count + 1):
        window = window + ordered[start + count - 1] - ordered[start - 1]
        candidate = reach(start)
        best_sum = torch.where(candidate < best_reach, window, best_sum)
        best_reach = torch.minimum(candidate, best_reach)
    return best_sum / count
