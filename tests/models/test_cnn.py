"""The bucketing paper's MNIST CNN."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stamen.errors import ConfigError
from stamen.models import create_model
from stamen.models.dropout import Dropout, Dropout2d


def test_parameter_count_is_the_papers() -> None:
    model = create_model("cnn", (1, 28, 28), 10, seed=0)
    # conv 1*32*9+32, conv 32*64*9+64, fc 9216*128+128, fc 128*10+10
    assert sum(p.numel() for p in model.parameters()) == 1_199_882


def test_no_relu_after_the_second_convolution() -> None:
    model = create_model("cnn", (1, 28, 28), 10, seed=0)
    assert [type(m) for m in model] == [
        nn.Conv2d, nn.ReLU, nn.Conv2d, nn.MaxPool2d, Dropout2d,
        nn.Flatten, nn.Linear, nn.ReLU, Dropout, nn.Linear,
    ]  # fmt: skip
    assert model[4].p == 0.25 and model[8].p == 0.5
    assert model[6].in_features == 9216 and model[6].out_features == 128


def test_negative_conv_outputs_reach_the_pool() -> None:
    # Without a ReLU after conv2, the pooled features can be negative.
    model = create_model("cnn", (1, 28, 28), 10, seed=0).eval()
    x = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        pooled = model[:4](x)
    assert pooled.shape == (2, 64, 12, 12)
    assert (pooled < 0).any()


def test_fc_adapts_to_small_images() -> None:
    # 8x8 digits: 8 -> 6 -> 4 -> pool 2, so fc takes 64 * 2 * 2 = 256 features.
    model = create_model("cnn", (1, 8, 8), 10, seed=0)
    assert model[6].in_features == 256
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)


@pytest.mark.parametrize("shape", [(1, 5, 28), (28, 28), (1, 1, 28, 28)])
def test_unusable_shapes_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="'cnn' needs images"):
        create_model("cnn", shape, 10, seed=0)
