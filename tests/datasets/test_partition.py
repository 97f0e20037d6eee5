import time

import numpy as np
import pytest

from stamen.datasets import PARTITIONERS, partition
from stamen.errors import ConfigError

METHODS = ["iid", "dirichlet", "shards", "natural", "sorted", "long-tail"]
RNG = np.random.default_rng(0)
LABELS = RNG.integers(0, 10, 3000)
GROUPS = RNG.integers(0, 50, 3000)


def _split(method, num_clients=20, seed=0, **options):
    groups = GROUPS if method == "natural" else None
    return partition(LABELS, num_clients, method, groups=groups, seed=seed, **options)


def test_all_methods_registered():
    assert set(METHODS) <= set(PARTITIONERS)


@pytest.mark.parametrize("method", METHODS)
def test_disjoint_sorted_int64_and_one_per_client(method):
    parts = _split(method)
    assert len(parts) == 20 and all(len(p) > 0 for p in parts)
    assert all(p.dtype == np.int64 and np.all(np.diff(p) > 0) for p in parts)
    joined = np.concatenate(parts)
    assert len(np.unique(joined)) == len(joined) and joined.max() < len(LABELS)
    if method in ("iid", "dirichlet", "shards", "sorted"):
        assert len(joined) == len(LABELS)


@pytest.mark.parametrize("method", METHODS)
def test_seeded(method):
    first, again, other = _split(method, seed=1), _split(method, seed=1), _split(method, seed=2)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    if method != "sorted":  # sorted has no randomness
        assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_input_not_mutated():
    labels = LABELS.copy()
    for method in ("iid", "dirichlet", "shards", "sorted", "long-tail"):
        partition(labels, 10, method)
    np.testing.assert_array_equal(labels, LABELS)


def test_sorted_gives_contiguous_labels():
    labels = np.array([2, 0, 1, 0, 2, 1, 0, 2, 1])
    parts = partition(labels, 3, "sorted")
    assert [labels[p].tolist() for p in parts] == [[0, 0, 0], [1, 1, 1], [2, 2, 2]]
    parts = partition(LABELS, 25, "sorted")
    assert all(np.ptp(LABELS[p]) <= 1 for p in parts)  # 300 samples per class, 120 per client
    assert [LABELS[p].min() for p in parts] == sorted(LABELS[p].min() for p in parts)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_shards_k_classes_per_client(k):
    parts = _split("shards", classes_per_client=k)
    assert all(len(np.unique(LABELS[p])) == k for p in parts)
    assert all(c % 10 in LABELS[p] for c, p in enumerate(parts))  # client c holds class c mod C


def test_dirichlet_small_alpha_is_more_skewed():
    def classes_per_client(alpha):
        parts = _split("dirichlet", alpha=alpha, min_size=1)
        return np.mean([np.count_nonzero(np.bincount(LABELS[p], minlength=10) >= 5) for p in parts])

    assert classes_per_client(0.1) < 5 < 9 < classes_per_client(100.0)


def test_dirichlet_min_size_unreachable():
    with pytest.raises(ConfigError, match="raise alpha, lower min_size or use fewer clients"):
        _split("dirichlet", num_clients=100, alpha=0.01, min_size=29)


def test_long_tail_fractions():
    labels = np.repeat(np.arange(5), 1600)
    parts = partition(labels, 4, "long-tail", seed=3)
    counts = np.bincount(labels[np.concatenate(parts)], minlength=5)
    assert counts.tolist() == [1600, 800, 400, 200, 100]
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_long_tail_follows_half_powers_on_uneven_classes():
    counts = np.bincount(LABELS[np.concatenate(_split("long-tail"))], minlength=10)
    expected = np.bincount(LABELS, minlength=10) * 0.5 ** np.arange(10)
    assert np.all(np.abs(counts - expected) <= 1)


def test_natural_follows_groups():
    groups = np.array([7, 3, 7, 3, 9, 9, 7])
    parts = partition(np.zeros(7, dtype=np.int64), 3, "natural", groups=groups)
    assert [p.tolist() for p in parts] == [[1, 3], [0, 2, 6], [4, 5]]
    chosen = partition(np.zeros(7, dtype=np.int64), 2, "natural", groups=groups, seed=0)
    assert all(len(np.unique(groups[p])) == 1 for p in chosen)
    assert len({int(groups[p][0]) for p in chosen}) == 2


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: partition(LABELS, 5, "random"),
            "expected one of dirichlet, iid, long-tail, natural, shards, sorted",
        ),
        (lambda: partition(LABELS, 0, "iid"), "num_clients must be an integer >= 1"),
        (lambda: partition(LABELS, 5, "dirichlet", alpha=0), "alpha must be > 0"),
        (lambda: partition(LABELS, 5, "natural"), "natural needs groups"),
        (lambda: partition(LABELS, 51, "natural", groups=GROUPS), "use num_clients <= 50"),
        (
            lambda: partition(LABELS, 5, "shards", classes_per_client=11),
            "between 1 and the 10 classes",
        ),
        (lambda: partition(np.arange(3), 4, "sorted"), "left 1 of 4 clients without samples"),
        (lambda: partition(LABELS.astype(float), 4, "iid"), "1-D integer array"),
    ],
)
def test_errors_name_allowed_values(call, message):
    with pytest.raises(ConfigError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", METHODS)
def test_fast_on_mnist_sized_labels(method):
    labels = np.random.default_rng(1).integers(0, 10, 60000)
    groups = np.arange(60000) // 60
    start = time.perf_counter()
    partition(labels, 100, method, groups=groups)
    assert time.perf_counter() - start < 0.5
