"""Bucketing and resampling: output counts, means of their groups, seeded determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stamen.algorithms.aggregation import Bucketing, Resampling


@pytest.mark.parametrize(("n", "s"), [(25, 2), (10, 3), (6, 6), (5, 1), (4, 7)])
def test_bucketing_outputs_are_means_of_disjoint_buckets(n: int, s: int) -> None:
    # With identity rows, output j holds 1/|bucket| at the members of bucket j.
    out = Bucketing(s=s).apply(torch.eye(n, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert out.shape == (math.ceil(n / s), n)
    members = out > 0
    assert torch.equal(members.sum(dim=0), torch.ones(n, dtype=torch.long))  # each input once
    sizes = members.sum(dim=1)
    assert torch.all(sizes[:-1] == s) and 1 <= sizes[-1] <= s
    torch.testing.assert_close(out.sum(dim=1), torch.ones(len(out), dtype=torch.float64))


def test_bucketing_by_hand_without_shuffle_effect() -> None:
    # All buckets of equal inputs: means equal the input regardless of the permutation.
    x = torch.tensor([[1.0, 2.0]] * 5)
    torch.testing.assert_close(
        Bucketing(s=2).apply(x, torch.Generator().manual_seed(3)), torch.tensor([[1.0, 2.0]] * 3)
    )


def test_bucketing_deterministic_for_a_seed() -> None:
    x = torch.randn(25, 8, generator=torch.Generator().manual_seed(1))
    a = Bucketing(s=2).apply(x, torch.Generator().manual_seed(7))
    b = Bucketing(s=2).apply(x, torch.Generator().manual_seed(7))
    c = Bucketing(s=2).apply(x, torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    d = Bucketing(s=2).apply(x, np.random.default_rng(7))
    assert torch.equal(d, Bucketing(s=2).apply(x, np.random.default_rng(7)))


@pytest.mark.parametrize(("n", "s"), [(10, 2), (7, 3), (5, 1)])
def test_resampling_uses_each_input_s_times(n: int, s: int) -> None:
    out = Resampling(s=s).apply(torch.eye(n, dtype=torch.float64), torch.Generator().manual_seed(0))
    assert out.shape == (n, n)
    # Row = mean of s draws (weights sum to 1, multiples of 1/s); column = s draws * 1/s = 1.
    torch.testing.assert_close(out.sum(dim=1), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(out.sum(dim=0), torch.ones(n, dtype=torch.float64))
    torch.testing.assert_close(out * s, (out * s).round())


def test_byzantine_bounds() -> None:
    assert Bucketing(s=2).byzantine_after(25, 5) == 5
    assert Bucketing(s=5).byzantine_after(10, 5) == 2
    assert Resampling(s=2).byzantine_after(25, 5) == 10
    assert Resampling(s=3).byzantine_after(10, 5) == 10


def test_pre_aggregators_keep_dtype_and_inputs() -> None:
    x = torch.randn(9, 4, dtype=torch.float64)
    before = x.clone()
    for stage in (Bucketing(s=2), Resampling(s=2)):
        assert stage.apply(x, torch.Generator().manual_seed(0)).dtype == torch.float64
    assert torch.equal(x, before)
