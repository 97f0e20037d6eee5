import pytest
import torch

from stamen.attacks import ClientAttack, GaussianNoise, LabelFlip, Scaled, SignFlip, Zero
from stamen.errors import ConfigError


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_default_hooks_are_identity():
    y, u = torch.tensor([0, 3]), torch.tensor([1.0, -2.0])
    assert ClientAttack().poison_labels(y, 10) is y
    assert ClientAttack().poison_update(u, gen()) is u
    assert ClientAttack.kind == "client"


def test_label_flip_maps_c_minus_1_minus_y():
    y = torch.tensor([0, 1, 9, 4])
    out = LabelFlip().poison_labels(y, 10)
    assert out.tolist() == [9, 8, 0, 5]
    assert y.tolist() == [0, 1, 9, 4]
    assert LabelFlip().poison_update(torch.ones(2), gen()).tolist() == [1.0, 1.0]


def test_label_flip_rejects_out_of_range():
    with pytest.raises(ValueError, match="labels"):
        LabelFlip().poison_labels(torch.tensor([10]), 10)


def test_sign_flip_zero_scaled():
    u = torch.tensor([1.0, -2.0, 0.5])
    assert SignFlip().poison_update(u, gen()).tolist() == [-1.0, 2.0, -0.5]
    assert Zero().poison_update(u, gen()).tolist() == [0.0, 0.0, 0.0]
    assert Scaled(factor=3).poison_update(u, gen()).tolist() == [3.0, -6.0, 1.5]
    assert u.tolist() == [1.0, -2.0, 0.5]


def test_gaussian_replaces_by_default_and_adds_on_request():
    u = torch.full((20000,), 5.0)
    noise = GaussianNoise(std=2.0).poison_update(u, gen(1))
    assert abs(noise.mean().item()) < 0.1 and abs(noise.std().item() - 2.0) < 0.1
    added = GaussianNoise(std=2.0, add=True).poison_update(u, gen(1))
    torch.testing.assert_close(added, u + noise)
    assert torch.equal(u, torch.full((20000,), 5.0))


def test_gaussian_is_deterministic_for_a_seeded_generator():
    u = torch.zeros(10)
    a = GaussianNoise(std=1.0).poison_update(u, gen(3))
    b = GaussianNoise(std=1.0).poison_update(u, gen(3))
    c = GaussianNoise(std=1.0).poison_update(u, gen(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_invalid_parameters_raise_config_error():
    with pytest.raises(ConfigError, match="std"):
        GaussianNoise(std=-1)
    with pytest.raises(ConfigError, match="factor"):
        Scaled(factor="big")
