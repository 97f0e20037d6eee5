"""Hand-computed cases for mean, median (even/odd count) and trimmed mean."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.aggregation import Mean, Median, TrimmedMean
from stamen.errors import ConfigError

# Columns: (1, 3, 2, 100) and (10, -2, 4, 0).
X = torch.tensor([[1.0, 10.0], [3.0, -2.0], [2.0, 4.0], [100.0, 0.0]])


def test_mean_by_hand() -> None:
    # (1+3+2+100)/4 = 26.5, (10-2+4+0)/4 = 3
    torch.testing.assert_close(Mean().aggregate(X)[0], torch.tensor([26.5, 3.0]))


def test_median_even_count_averages_the_two_middle_values() -> None:
    # sorted (1, 2, 3, 100) -> (2+3)/2 = 2.5; sorted (-2, 0, 4, 10) -> (0+4)/2 = 2
    torch.testing.assert_close(Median().aggregate(X)[0], torch.tensor([2.5, 2.0]))


def test_median_odd_count() -> None:
    # first three rows: sorted (1, 2, 3) -> 2; sorted (-2, 4, 10) -> 4
    torch.testing.assert_close(Median().aggregate(X[:3])[0], torch.tensor([2.0, 4.0]))


def test_median_differs_from_torch_median_on_even_count() -> None:
    assert torch.median(X, dim=0).values[0] == 2.0  # torch returns the lower middle value
    assert Median().aggregate(X)[0][0] == 2.5


def test_trimmed_mean_by_hand() -> None:
    x = torch.tensor([[1.0, 5.0], [2.0, -5.0], [3.0, 0.0], [4.0, 1.0], [100.0, 2.0]])
    # b=1 drops min and max: mean(2, 3, 4) = 3 and mean(0, 1, 2) = 1
    torch.testing.assert_close(TrimmedMean(b=1).aggregate(x)[0], torch.tensor([3.0, 1.0]))
    # b=2 keeps only the middle value: 3 and 1
    torch.testing.assert_close(TrimmedMean(b=2).aggregate(x)[0], torch.tensor([3.0, 1.0]))
    torch.testing.assert_close(TrimmedMean(b=0).aggregate(x)[0], x.mean(dim=0))


def test_trimmed_mean_refuses_2b_not_below_n() -> None:
    with pytest.raises(ConfigError, match="2b < n"):
        TrimmedMean(b=2).aggregate(X)


def test_median_refuses_half_byzantine() -> None:
    with pytest.raises(ConfigError, match="f < n/2"):
        Median(f=2).aggregate(X)


@pytest.mark.parametrize("bad", [-1, 1.5, True])
def test_bad_counts_refused(bad) -> None:
    with pytest.raises(ConfigError, match="integer"):
        TrimmedMean(b=bad)
