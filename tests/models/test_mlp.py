"""The FedAvg 2NN."""

from __future__ import annotations

import torch

from stamen.models import create_model


def test_parameter_count_on_mnist() -> None:
    model = create_model("mlp", (1, 28, 28), 10, seed=0)
    # 784*200 + 200, 200*200 + 200, 200*10 + 10
    assert sum(p.numel() for p in model.parameters()) == 199_210


def test_flattens_any_shape_the_same_way() -> None:
    image = create_model("mlp", (1, 28, 28), 10, seed=3)
    flat = create_model("mlp", (784,), 10, seed=3)
    x = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(image(x), flat(x.reshape(4, 784)))


def test_hidden_layers_are_200_wide_with_relu() -> None:
    model = create_model("mlp", (5,), 3, seed=0)
    layers = [type(m).__name__ for m in model]
    assert layers == ["Flatten", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [(m.in_features, m.out_features) for m in model if isinstance(m, torch.nn.Linear)] == [
        (5, 200),
        (200, 200),
        (200, 3),
    ]
