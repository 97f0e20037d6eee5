"""CIFAR ResNet-8 and ResNet-20 with option-B shortcuts."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stamen.errors import ConfigError
from stamen.models import create_model


def count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def expected_count(blocks_per_stage: int, num_classes: int) -> int:
    """Hand count: stem, 3x3 conv-BN pairs, two 1x1 projections, classifier."""
    conv_bn = lambda c_in, c_out, k: c_in * c_out * k * k + 2 * c_out  # noqa: E731
    total = conv_bn(3, 16, 3)
    for c_in, c_out in [(16, 16), (16, 32), (32, 64)]:
        total += conv_bn(c_in, c_out, 3) + conv_bn(c_out, c_out, 3)
        total += (blocks_per_stage - 1) * 2 * conv_bn(c_out, c_out, 3)
    total += conv_bn(16, 32, 1) + conv_bn(32, 64, 1)
    return total + 64 * num_classes + num_classes


def test_parameter_counts() -> None:
    assert count(create_model("resnet20", (3, 32, 32), 10, seed=0)) == 272_474
    assert count(create_model("resnet8", (3, 32, 32), 10, seed=0)) == 78_042
    assert expected_count(3, 10) == 272_474 and expected_count(1, 10) == 78_042
    assert count(create_model("resnet20", (3, 32, 32), 100, seed=0)) == expected_count(3, 100)


@pytest.mark.parametrize("name, blocks", [("resnet8", 3), ("resnet20", 9)])
def test_depth_and_projection_shortcuts(name: str, blocks: int) -> None:
    model = create_model(name, (3, 32, 32), 10, seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    three_by_three = [c for c in convs if c.kernel_size == (3, 3)]
    projections = [c for c in convs if c.kernel_size == (1, 1)]
    assert len(three_by_three) + 1 == 2 + 6 * (blocks // 3)  # + fc, = depth
    assert [(c.in_channels, c.out_channels, c.stride) for c in projections] == [
        (16, 32, (2, 2)),
        (32, 64, (2, 2)),
    ]


def test_batchnorm_buffers_are_in_the_state_dict() -> None:
    model = create_model("resnet8", (3, 32, 32), 10, seed=0)
    state = model.state_dict()
    assert sum(k.endswith("running_mean") for k in state) == 9  # stem + 3 blocks * 2 + 2 shortcuts
    assert sum(k.endswith("num_batches_tracked") for k in state) == 9
    model.train()(torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert int(model.state_dict()["bn.num_batches_tracked"]) == 1


def test_eval_predictions_do_not_depend_on_the_batch() -> None:
    model = create_model("resnet8", (3, 32, 32), 10, seed=0).eval()
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:1], model(x[:1]))


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 28, 28), (3, 64, 64), (3072,)])
def test_non_cifar_shapes_are_rejected(shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match="3-channel 32x32"):
        create_model("resnet20", shape, 10, seed=0)
