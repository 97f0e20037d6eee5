"""Multinomial logistic regression."""

from __future__ import annotations

import torch

from stamen.models import create_model


def test_one_linear_layer_on_the_flattened_input() -> None:
    model = create_model("logreg", (1, 28, 28), 10, seed=0)
    assert sum(p.numel() for p in model.parameters()) == 784 * 10 + 10
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        linear = model[1]
        assert torch.allclose(model(x), x.reshape(3, -1) @ linear.weight.T + linear.bias)
