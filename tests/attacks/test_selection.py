import numpy as np
import pytest

from stamen.attacks import byzantine_clients
from stamen.errors import ConfigError


def test_same_seed_same_ids_sorted_and_distinct():
    a = byzantine_clients(25, 5, seed=0)
    assert a.tolist() == sorted(set(a.tolist())) and len(a) == 5
    assert np.array_equal(a, byzantine_clients(25, 5, seed=0))
    assert a.dtype == np.int64 and a.min() >= 0 and a.max() < 25
    assert any(not np.array_equal(a, byzantine_clients(25, 5, seed=s)) for s in range(1, 5))


def test_zero_byzantine():
    assert byzantine_clients(10, 0, seed=1).tolist() == []


@pytest.mark.parametrize("f", [5, 6, -1])
def test_rejects_no_honest_majority_or_negative(f):
    with pytest.raises(ConfigError, match="num_byzantine"):
        byzantine_clients(10, f, seed=0)


def test_just_below_half():
    assert len(byzantine_clients(11, 5, seed=0)) == 5
