"""Stamen's dropout layers draw what ``F.dropout`` draws on the CPU, to the bit."""

import pytest
import torch
import torch.nn.functional as F

from stamen.models.dropout import Dropout, Dropout2d


@pytest.mark.parametrize("p", [0.25, 0.5, 1.0])
def test_masks_equal_torch_dropout_on_the_cpu(p):
    x, y = torch.randn(16, 8, 6, 6), torch.randn(16, 20)
    for seed in range(3):
        torch.manual_seed(seed)
        expected = F.dropout2d(x, p, training=True), F.dropout(y, p, training=True)
        torch.manual_seed(seed)
        found = Dropout2d(p).train()(x), Dropout(p).train()(y)
        assert torch.equal(found[0], expected[0]) and torch.equal(found[1], expected[1])


def test_evaluation_and_zero_probability_pass_the_input_through():
    x = torch.randn(4, 3, 5, 5)
    assert torch.equal(Dropout2d(0.5).eval()(x), x) and torch.equal(Dropout(0.0).train()(x), x)
