"""Properties every rule should have: permutation invariance, all-equal inputs, bounded output
under < 1/2 huge outliers, inputs left untouched, dtype/device preserved."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.aggregation import (
    Bulyan,
    CenteredClip,
    GeometricMedian,
    Krum,
    Mean,
    Median,
    MultiKrum,
    TrimmedMean,
)
from stamen.algorithms.aggregation.primitives import sorted_columns

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])

ROBUST = {
    "median": Median(f=3),
    "trimmed-mean": TrimmedMean(b=3),
    "krum": Krum(f=3),
    "multi-krum": MultiKrum(f=3, m=5),
    "bulyan": Bulyan(f=3),
    "geomed": GeometricMedian(T=8, nu=0.1, f=3),
    "cclip": CenteredClip(tau=10, iters=3),
}
ALL = {"mean": Mean(), **ROBUST}


@pytest.mark.parametrize("name", sorted(ALL))
def test_permutation_invariant(name: str) -> None:
    updates = torch.randn(15, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    order = torch.randperm(15, generator=torch.Generator().manual_seed(2))
    expected, _ = ALL[name].aggregate(updates)
    permuted, _ = ALL[name].aggregate(updates[order])
    torch.testing.assert_close(permuted, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(ALL))
def test_all_equal_inputs_give_that_input(name: str) -> None:
    # norm 0.5 * sqrt(8) < tau, so centred clipping from zero reaches the point in one step.
    point = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64)
    updates = point.repeat(15, 1)
    result, _ = ALL[name].aggregate(updates)
    torch.testing.assert_close(result, point)


@pytest.mark.parametrize("name", sorted(ROBUST))
def test_bounded_when_fewer_than_half_are_huge(name: str, honest_and_outliers) -> None:
    updates, _ = honest_and_outliers
    result, _ = ROBUST[name].aggregate(updates)
    # Honest points are N(0, I_20): norms ~4.5; any 1e6 contamination would show up as >> 100.
    assert result.norm() < 20.0


def test_mean_is_not_robust(honest_and_outliers) -> None:
    updates, _ = honest_and_outliers
    assert Mean().aggregate(updates)[0].norm() > 1e5


@pytest.mark.parametrize("name", sorted(ALL))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("device", DEVICES)
def test_dtype_and_device_preserved_and_input_untouched(name, dtype, device) -> None:
    updates = torch.randn(15, 12, generator=torch.Generator().manual_seed(3)).to(device, dtype)
    before = updates.clone()
    result, _ = ALL[name].aggregate(updates)
    assert result.shape == (12,) and result.dtype == dtype and result.device == updates.device
    assert torch.equal(updates, before)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_threaded_column_sort_equals_torch_sort(dtype) -> None:
    # Wide enough for the block-threaded numpy path, odd width so blocks are uneven.
    x = torch.randn(6, 100_003, generator=torch.Generator().manual_seed(4), dtype=dtype)
    assert torch.equal(sorted_columns(x), torch.sort(x, dim=0).values)
