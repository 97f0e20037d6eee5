"""Our NumPy partitioners give the same index sets as flwr-datasets' for the same seed."""

import warnings

import numpy as np
import pytest
from datasets import Dataset
from flwr_datasets.partitioner import (
    DirichletPartitioner,
    IidPartitioner,
    NaturalIdPartitioner,
    PathologicalPartitioner,
)

from stamen.datasets import partition
from stamen.errors import ConfigError

LABELS = np.random.default_rng(5).integers(0, 6, 900)


def _flwr(partitioner, columns, num_clients):
    partitioner.dataset = Dataset.from_dict(columns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parts = [
            partitioner.load_partition(i).with_format("numpy")[:]["index"]
            for i in range(num_clients)
        ]
    return [np.sort(np.asarray(p)) for p in parts]


def _assert_same(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)


def test_iid_matches_flwr():
    order = np.random.default_rng(4).permutation(len(LABELS))
    _assert_same(partition(LABELS, 7, "iid", seed=4), _flwr(IidPartitioner(7), {"index": order}, 7))


@pytest.mark.parametrize("alpha, min_size", [(0.3, 10), (5.0, 0), (0.3, 30)])  # 30: 4 redraws
def test_dirichlet_matches_flwr(alpha, min_size):
    theirs = _flwr(
        DirichletPartitioner(8, "label", alpha, min_size, seed=11),
        {"label": LABELS, "index": np.arange(len(LABELS))},
        8,
    )
    _assert_same(partition(LABELS, 8, "dirichlet", alpha=alpha, min_size=min_size, seed=11), theirs)


def test_dirichlet_gives_up_where_flwr_does():
    partitioner = DirichletPartitioner(8, "label", 0.05, 20, seed=11)
    with pytest.raises(ValueError, match="max number of attempts"):
        _flwr(partitioner, {"label": LABELS, "index": np.arange(len(LABELS))}, 8)
    with pytest.raises(ConfigError, match="in 11 draws"):
        partition(LABELS, 8, "dirichlet", alpha=0.05, min_size=20, seed=11)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_shards_match_flwr_pathological(k):
    theirs = _flwr(
        PathologicalPartitioner(9, "label", k, class_assignment_mode="first-deterministic", seed=2),
        {"label": LABELS, "index": np.arange(len(LABELS))},
        9,
    )
    _assert_same(partition(LABELS, 9, "shards", classes_per_client=k, seed=2), theirs)


def test_natural_matches_flwr():
    groups = np.random.default_rng(3).integers(0, 12, len(LABELS)) * 10
    columns = {"group": groups, "index": np.arange(len(LABELS))}
    theirs = _flwr(NaturalIdPartitioner("group"), columns, 12)
    _assert_same(partition(LABELS, 12, "natural", groups=groups), theirs)
