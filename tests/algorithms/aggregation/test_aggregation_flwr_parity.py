"""Our rules equal flwr's helpers on the same inputs (float tolerance).

Conventions: flwr's trimmed mean takes a proportion (``b = int(proportion * n)``); flwr's
legacy ``aggregate_bulyan`` iterates Krum as we do, its message-based ``Bulyan`` selects the
theta best of one Multi-Krum scoring (equal here, where both pick the same set).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import ArrayRecord, RecordDict
from flwr.server.strategy.aggregate import (
    aggregate_bulyan,
    aggregate_krum,
    aggregate_median,
    aggregate_trimmed_avg,
)
from flwr.serverapp.strategy.bulyan import aggregate_n_closest_weights
from flwr.serverapp.strategy.fedtrimmedavg import trim_mean
from flwr.serverapp.strategy.multikrum import select_multikrum

from stamen.algorithms.aggregation import Bulyan, Krum, Median, MultiKrum, TrimmedMean
from stamen.algorithms.aggregation.bulyan import mean_of_closest


def inputs(n: int, seed: int) -> torch.Tensor:
    x = torch.randn(n, 40, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    x[:2] += 5.0  # two far points so the selection is not a coin toss
    return x


def as_results(x: torch.Tensor) -> list[tuple[list[np.ndarray], int]]:
    return [([row.numpy().copy()], 1) for row in x]


@pytest.mark.parametrize(("n", "f"), [(9, 2), (12, 3), (7, 0)])
def test_krum_and_multi_krum_match_legacy_flwr(n: int, f: int) -> None:
    x = inputs(n, n)
    expected = aggregate_krum(as_results(x), num_malicious=f, to_keep=0)[0]
    np.testing.assert_allclose(Krum(f=f).aggregate(x)[0].numpy(), expected, rtol=1e-12)
    m = n - f
    expected = aggregate_krum(as_results(x), num_malicious=f, to_keep=m)[0]
    np.testing.assert_allclose(MultiKrum(f=f, m=m).aggregate(x)[0].numpy(), expected, rtol=1e-10)


def test_multi_krum_matches_message_flwr_selection() -> None:
    x = inputs(10, 3)
    contents = [RecordDict({"arrays": ArrayRecord([row.numpy().copy()])}) for row in x]
    chosen = select_multikrum(contents, num_malicious_nodes=2, num_nodes_to_select=4)
    expected = np.mean([c["arrays"].to_numpy_ndarrays()[0] for c in chosen], axis=0)
    np.testing.assert_allclose(MultiKrum(f=2, m=4).aggregate(x)[0].numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("n", [7, 8])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_median_matches_flwr(n: int, dtype) -> None:
    x = inputs(n, 5).to(dtype)
    expected = aggregate_median(as_results(x))[0]
    np.testing.assert_allclose(Median().aggregate(x)[0].numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize(("n", "proportion"), [(10, 0.2), (11, 0.3), (9, 0.0)])
def test_trimmed_mean_matches_flwr_proportion(n: int, proportion: float) -> None:
    x = inputs(n, 6)
    b = int(proportion * n)
    ours = TrimmedMean(b=b).aggregate(x)[0].numpy()
    np.testing.assert_allclose(
        ours, aggregate_trimmed_avg(as_results(x), proportion)[0], rtol=1e-12
    )
    np.testing.assert_allclose(ours, trim_mean(x.numpy(), proportion), rtol=1e-12)


@pytest.mark.parametrize(("n", "f"), [(11, 2), (15, 3), (8, 1)])
def test_bulyan_matches_legacy_flwr(n: int, f: int) -> None:
    x = inputs(n, 7)
    expected = aggregate_bulyan(as_results(x), f, aggregate_krum, to_keep=0)[0]
    np.testing.assert_allclose(
        Bulyan(f=f).aggregate(x)[0].numpy(), expected, rtol=1e-12, atol=1e-12
    )


def test_bulyan_trim_step_matches_message_flwr() -> None:
    # Same selected set -> same coordinate-wise step as flwr's aggregate_n_closest_weights.
    x = inputs(9, 8)
    median = np.median(x.numpy(), axis=0)
    expected = aggregate_n_closest_weights([median], [[row] for row in x.numpy()], 3)[0]
    ours = mean_of_closest(torch.sort(x, dim=0).values, torch.from_numpy(median), 3)
    np.testing.assert_allclose(ours.numpy(), expected, rtol=1e-12, atol=1e-12)
