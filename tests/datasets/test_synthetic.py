import numpy as np
import pytest

from stamen.datasets.synthetic import generate_synthetic, load_synthetic, split_per_group
from stamen.errors import ConfigError


def test_deterministic_per_seed():
    a, b = generate_synthetic(users=5, seed=3), generate_synthetic(users=5, seed=3)
    c = generate_synthetic(users=5, seed=4)
    for left, right in zip(a, b):
        np.testing.assert_array_equal(left, right)
    assert len(a[0]) != len(c[0]) or not np.array_equal(a[0], c[0])


def test_shapes_and_sizes():
    x, y, groups = generate_synthetic(users=8, seed=0)
    assert x.dtype == np.float32 and x.shape[1] == 60
    assert y.dtype == np.int64 and y.min() >= 0 and y.max() <= 9
    sizes = np.bincount(groups)
    assert len(sizes) == 8 and sizes.min() >= 50  # LEAF: lognormal(4, 2) + 50 per user


def test_beta_spreads_the_users_inputs():
    # beta scales the spread of the users' input means: with beta = 0 each v_k ~ N(0, 1)
    x, _, groups = generate_synthetic(alpha=0.0, beta=0.0, users=40, seed=0)
    x_wide, _, groups_wide = generate_synthetic(alpha=0.0, beta=10.0, users=40, seed=0)
    spread = np.std([x[groups == k].mean() for k in range(40)])
    spread_wide = np.std([x_wide[groups_wide == k].mean() for k in range(40)])
    assert spread < 2 < spread_wide


def test_split_per_group_keeps_first_80_percent():
    groups = np.array([0] * 10 + [1] * 5)
    train, test = split_per_group(groups, 0.8)
    assert train.tolist() == list(range(8)) + [10, 11, 12, 13]
    assert test.tolist() == [8, 9, 14]


def test_loader_options_and_groups():
    data = load_synthetic("alpha=0.5,beta=0.5,users=6", seed=1)
    assert data.kind == "vector" and data.input_shape == (60,) and data.num_classes == 10
    assert set(np.unique(data.train.groups)) == set(range(6))
    assert len(data.train) > len(data.test) > 0
    with pytest.raises(ConfigError, match="users >= 1"):
        load_synthetic("users=0")
