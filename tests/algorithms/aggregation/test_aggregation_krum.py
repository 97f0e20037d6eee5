"""Hand-computed Krum, Multi-Krum and Bulyan on points of a line."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.aggregation import Bulyan, Krum, MultiKrum, krum_scores
from stamen.algorithms.aggregation.primitives import gram_matrix, pairwise_squared_distances
from stamen.errors import ConfigError

# Points 0, 1, 2, 10, 11 on a line (d=1), f=1 -> n-f-2 = 2 nearest neighbours:
#   0: 1^2 + 2^2 = 5        1: 1 + 1 = 2        2: 1 + 2^2 = 5
#   10: 1 + 8^2 = 65        11: 1 + 9^2 = 82
LINE = torch.tensor([[0.0], [1.0], [2.0], [10.0], [11.0]], dtype=torch.float64)


def test_krum_scores_by_hand() -> None:
    distances = pairwise_squared_distances(gram_matrix(LINE))
    torch.testing.assert_close(
        krum_scores(distances, 1), torch.tensor([5.0, 2, 5, 65, 82], dtype=torch.float64)
    )


def test_krum_picks_lowest_score() -> None:
    torch.testing.assert_close(
        Krum(f=1).aggregate(LINE)[0], torch.tensor([1.0], dtype=torch.float64)
    )


def test_multi_krum_averages_m_best() -> None:
    # best four: 1 (2), 0 (5), 2 (5), 10 (65) -> (0+1+2+10)/4 = 3.25
    torch.testing.assert_close(
        MultiKrum(f=1, m=4).aggregate(LINE)[0], torch.tensor([3.25], dtype=torch.float64)
    )


def test_krum_uses_n_minus_f_minus_2_neighbours() -> None:
    # f=0 -> 3 neighbours: 0: 1+4+100=105, 1: 1+1+81=83, 2: 1+4+64=69,
    #   10: 1+64+81=146, 11: 1+81+100=182
    distances = pairwise_squared_distances(gram_matrix(LINE))
    torch.testing.assert_close(
        krum_scores(distances, 0), torch.tensor([105.0, 83, 69, 146, 182], dtype=torch.float64)
    )
    torch.testing.assert_close(
        Krum(f=0).aggregate(LINE)[0], torch.tensor([2.0], dtype=torch.float64)
    )


def test_bulyan_by_hand() -> None:
    # n=7, f=1: theta=5, beta=3. Iterated Krum on 0,1,2,3,4,100,-100:
    #   n'=7, 4 neighbours: scores 0:30 1:15 2:10 3:15 4:30 -> take 2
    #   n'=6, 3 neighbours: 0:26 1:14 3:14 4:26 -> take 1 (tie, lower index)
    #   n'=5, 2 neighbours: 0:25 3:10 4:17 -> take 3
    #   n'=4, 1 neighbour: 0:16 4:16 100:9216 -> take 0;  n'=3: 4:9216 100:9216 -> take 4
    # selected {0..4}: median 2, the 3 values closest to it are 1, 2, 3 -> 2.
    # Second coordinate: 10 * first + (0, 0, 0, 0, 9, 0, 0): selected 0, 10, 20, 30, 49,
    # median 20, closest 3: 10, 20, 30 -> 20.
    first = torch.tensor([0.0, 1, 2, 3, 4, 100, -100], dtype=torch.float64)
    second = 10 * first + torch.tensor([0.0, 0, 0, 0, 9, 0, 0], dtype=torch.float64)
    result, _ = Bulyan(f=1).aggregate(torch.stack([first, second], dim=1))
    torch.testing.assert_close(result, torch.tensor([2.0, 20.0], dtype=torch.float64))


@pytest.mark.parametrize(
    ("rule", "n", "message"),
    [
        (Krum(f=2), 6, "n > 2f \\+ 2"),
        (MultiKrum(f=1, m=5), 4, "n > 2f \\+ 2"),
        (MultiKrum(f=0, m=5), 4, "m <= n"),
        (Bulyan(f=2), 10, "n >= 4f \\+ 3"),
    ],
)
def test_infeasible_sizes_refused(rule, n, message) -> None:
    with pytest.raises(ConfigError, match=message):
        rule.aggregate(torch.zeros(n, 3))


def test_power_four_sums_fourth_powers_like_the_bucketing_papers_code():
    """The authors' code sums ``(||x_i - x_j||^2)^2`` over the n - f - 2 nearest."""
    points = torch.randn(9, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    squared = pairwise_squared_distances(gram_matrix(points))
    f = 2
    expected = [
        sum(sorted(squared[i, j].item() ** 2 for j in range(9) if j != i)[: 9 - f - 2])
        for i in range(9)
    ]
    torch.testing.assert_close(
        krum_scores(squared, f, power=4), torch.tensor(expected, dtype=torch.float64)
    )
    chosen = Krum(f=f, power=4).aggregate(points)[0]
    torch.testing.assert_close(chosen, points[int(torch.tensor(expected).argmin())])
    with pytest.raises(ConfigError, match="power must be a number > 0"):
        Krum(f=1, power=0)
