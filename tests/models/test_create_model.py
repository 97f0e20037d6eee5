"""Conformance of every registered model to the ``create_model`` interface."""

from __future__ import annotations

import pytest
import torch

from stamen.errors import ConfigError
from stamen.models import MODELS, create_model

# name -> (input_shape, num_classes, input dtype)
CASES = {
    "mlp": ((1, 8, 8), 10, torch.float32),
    "logreg": ((1, 8, 8), 10, torch.float32),
    "cnn": ((1, 28, 28), 10, torch.float32),
    "resnet8": ((3, 32, 32), 10, torch.float32),
    "resnet20": ((3, 32, 32), 10, torch.float32),
    "char-lstm": ((80,), 80, torch.int64),
}
# name -> an input shape the model cannot take
WRONG_SHAPES = {
    "mlp": (),
    "logreg": (),
    "cnn": (784,),
    "resnet8": (1, 28, 28),
    "resnet20": (3, 64, 64),
    "char-lstm": (1, 28, 28),
}


def sample_batch(name: str, batch: int = 3, seed: int = 0) -> torch.Tensor:
    shape, num_classes, dtype = CASES[name]
    generator = torch.Generator().manual_seed(seed)
    if dtype == torch.int64:
        return torch.randint(num_classes, (batch, *shape), generator=generator)
    return torch.randn((batch, *shape), generator=generator)


def build(name: str, seed: int) -> torch.nn.Module:
    shape, num_classes, _ = CASES[name]
    return create_model(name, shape, num_classes, seed)


def states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_every_registered_model_is_covered() -> None:
    assert MODELS.names() == sorted(CASES)
    assert sorted(WRONG_SHAPES) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("train", [True, False])
def test_output_is_logits_per_sample(name: str, train: bool) -> None:
    model = build(name, seed=0).train(train)
    with torch.no_grad():
        out = model(sample_batch(name))
    assert out.shape == (3, CASES[name][1])
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_seed_gives_identical_state(name: str) -> None:
    a, b = build(name, seed=7), build(name, seed=7)
    assert states_equal(a, b)
    x = sample_batch(name)
    with torch.no_grad():
        assert torch.equal(a.eval()(x), b.eval()(x))


@pytest.mark.parametrize("name", sorted(CASES))
def test_different_seeds_give_different_weights(name: str) -> None:
    a, b = build(name, seed=1), build(name, seed=2)
    pairs = zip(a.named_parameters(), b.named_parameters())
    differing = [n for (n, p), (_, q) in pairs if not torch.equal(p, q)]
    # Every weight matrix / kernel is random; only biases-at-zero and BN affine may coincide.
    weights = [n for n, p in a.named_parameters() if p.dim() > 1]
    assert set(weights) <= set(differing)


@pytest.mark.parametrize("name", sorted(CASES))
def test_global_rng_is_neither_used_nor_changed(name: str) -> None:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(123)
        before = torch.get_rng_state()
        first = build(name, seed=5)
        assert torch.equal(torch.get_rng_state(), before)
        torch.manual_seed(456)
        second = build(name, seed=5)
    assert states_equal(first, second)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_few_steps_reduce_the_loss_on_a_fixed_batch(name: str) -> None:
    model = build(name, seed=0).eval()  # eval: no dropout noise, BN uses its running stats
    x = sample_batch(name, batch=8)
    y = torch.arange(8) % CASES[name][1]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]


def test_unknown_name_lists_the_known_models() -> None:
    with pytest.raises(ConfigError) as err:
        create_model("resnet18", (3, 32, 32), 10, seed=0)
    message = str(err.value)
    assert "resnet18" in message and "\n" not in message
    for name in CASES:
        assert name in message


@pytest.mark.parametrize("name", sorted(WRONG_SHAPES))
def test_wrong_input_shape_is_a_one_line_config_error(name: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_model(name, WRONG_SHAPES[name], CASES[name][1], seed=0)
    message = str(err.value)
    assert name in message and "\n" not in message
    assert str(tuple(WRONG_SHAPES[name])) in message


@pytest.mark.parametrize("shape", [(0, 28, 28), (1, -1, 28), (2.0, 3)])
def test_non_positive_or_non_int_dimensions_are_rejected(shape: tuple) -> None:
    with pytest.raises(ConfigError, match="positive ints"):
        create_model("mlp", shape, 10, seed=0)


@pytest.mark.parametrize("num_classes", [0, -3, 2.5, True])
def test_bad_num_classes_is_rejected(num_classes: object) -> None:
    with pytest.raises(ConfigError, match="num_classes"):
        create_model("mlp", (4,), num_classes, seed=0)  # type: ignore[arg-type]


def test_bad_seed_is_rejected() -> None:
    with pytest.raises(ConfigError, match="seed"):
        create_model("mlp", (4,), 2, seed="0")  # type: ignore[arg-type]
