"""Mime's base optimizers: U with the state frozen and V, against torch.optim."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.mime.base_optimizers import Adam, SGDMomentum, create_base_optimizer
from stamen.errors import ConfigError

CASES = [
    (SGDMomentum(beta=0.9), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)),
    (SGDMomentum(beta=0.0), lambda p: torch.optim.SGD(p, lr=0.1)),
    (
        Adam(beta1=0.8, beta2=0.99, eps=1e-6),
        lambda p: torch.optim.Adam(p, lr=0.1, betas=(0.8, 0.99), eps=1e-6),
    ),
]


@pytest.mark.parametrize(("optimizer", "reference"), CASES)
def test_u_then_v_is_torch_optim_step_for_step(optimizer, reference):
    torch.manual_seed(0)
    w = torch.randn(5, requires_grad=True)
    ours = w.detach().clone()
    theirs = reference([w])
    state = optimizer.init_state(ours)
    for _ in range(4):
        grad = torch.randn(5)
        w.grad = grad.clone()
        theirs.step()
        ours = ours - 0.1 * optimizer.direction(grad, state)
        state = optimizer.update_state(grad, state)
        assert torch.allclose(ours, w.detach(), atol=1e-6), optimizer


@pytest.mark.parametrize(("optimizer", "reference"), CASES)
def test_direction_leaves_the_state_alone(optimizer, reference):
    state = optimizer.update_state(torch.ones(3), optimizer.init_state(torch.zeros(3)))
    before = {k: v.clone() for k, v in state.items()}
    optimizer.direction(torch.full((3,), 2.0), state)
    assert all(torch.equal(before[k], state[k]) for k in state)


def test_specs_and_bad_values():
    assert create_base_optimizer("sgdm") == SGDMomentum(beta=0.9)
    assert create_base_optimizer("adam(beta1=0.5)") == Adam(beta1=0.5)
    with pytest.raises(ConfigError, match="expected one of adam, sgdm"):
        create_base_optimizer("rmsprop")
    with pytest.raises(ConfigError, match=r"beta must be a number in \[0, 1\)"):
        create_base_optimizer("sgdm(beta=1.0)")
    with pytest.raises(ConfigError, match="unknown argument lr for base optimizer 'adam'"):
        create_base_optimizer("adam(lr=0.1)")
