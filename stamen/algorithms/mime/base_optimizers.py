"""Mime's base optimizers (Karimireddy et al., arXiv 2008.03606, Algorithm 1).

A base optimizer is split into an update ``U`` and a state update ``V`` on flat parameter
vectors: Mime's clients step ``y <- y - lr * U(g, s)`` with the server's state ``s`` FROZEN,
and only the server advances ``s <- V(g, s)``, with full-batch gradients at the server
model. Both follow ``torch.optim`` so that one step of one client is torch's step:

* ``sgdm(beta)``: ``V: m <- beta m + g``; ``U(g, s) = g + beta m`` (``torch.optim.SGD`` with
  ``momentum=beta``; the state starts at zero, so the first ``m`` is ``g``, as in torch);
* ``adam(beta1, beta2, eps)``: ``V: m <- b1 m + (1-b1) g, v <- b2 v + (1-b2) g^2,
  t <- t + 1``; ``U(g, s)`` is Adam's bias-corrected step ``m'/(1-b1^t') /
  (sqrt(v'/(1-b2^t')) + eps)`` computed from ``(m', v', t') = V(g, s)``, which is not kept.

A state is a dict of tensors (``"step"`` is a 0-d tensor), so it travels as an ArrayRecord.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from stamen.errors import ConfigError
from stamen.registry import Registry

OptimizerState = dict[str, Tensor]


class BaseOptimizer(Protocol):
    def init_state(self, like: Tensor) -> OptimizerState:
        """The initial state for parameters shaped and typed like ``like`` (flat)."""

    def direction(self, grad: Tensor, state: OptimizerState) -> Tensor:
        """``U(g, s)``: the step direction from ``grad`` with ``state`` frozen."""

    def update_state(self, grad: Tensor, state: OptimizerState) -> OptimizerState:
        """``V(g, s)``: the next state (a new dict; ``state`` is not modified)."""


BASE_OPTIMIZERS: Registry = Registry("base optimizer")


def _require_unit_interval(name: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ConfigError(f"{name} must be a number in [0, 1), got {value!r}")


@BASE_OPTIMIZERS.register("sgdm")
@dataclass(frozen=True)
class SGDMomentum:
    """Heavy-ball momentum as in ``torch.optim.SGD(momentum=beta)`` (``beta = 0``: plain SGD)."""

    beta: float = 0.9

    def __post_init__(self) -> None:
        _require_unit_interval("sgdm: beta", self.beta)

    def init_state(self, like: Tensor) -> OptimizerState:
        return {"momentum": torch.zeros_like(like)}

    def direction(self, grad: Tensor, state: OptimizerState) -> Tensor:
        return grad + self.beta * state["momentum"]

    def update_state(self, grad: Tensor, state: OptimizerState) -> OptimizerState:
        return {"momentum": self.beta * state["momentum"] + grad}


@BASE_OPTIMIZERS.register("adam")
@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba, arXiv 1412.6980) as in ``torch.optim.Adam``."""

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        _require_unit_interval("adam: beta1", self.beta1)
        _require_unit_interval("adam: beta2", self.beta2)
        if isinstance(self.eps, bool) or not isinstance(self.eps, int | float) or self.eps <= 0:
            raise ConfigError(f"adam: eps must be a number > 0, got {self.eps!r}")

    def init_state(self, like: Tensor) -> OptimizerState:
        return {
            "exp-avg": torch.zeros_like(like),
            "exp-avg-sq": torch.zeros_like(like),
            "step": torch.zeros((), dtype=torch.float64),
        }

    def direction(self, grad: Tensor, state: OptimizerState) -> Tensor:
        new = self.update_state(grad, state)
        step = float(new["step"])
        first = new["exp-avg"] / (1 - self.beta1**step)
        second = new["exp-avg-sq"].sqrt() / math.sqrt(1 - self.beta2**step)
        return first / (second + self.eps)

    def update_state(self, grad: Tensor, state: OptimizerState) -> OptimizerState:
        return {
            "exp-avg": self.beta1 * state["exp-avg"] + (1 - self.beta1) * grad,
            "exp-avg-sq": self.beta2 * state["exp-avg-sq"] + (1 - self.beta2) * grad * grad,
            "step": state["step"] + 1,
        }


def create_base_optimizer(spec: str) -> BaseOptimizer:
    """``"sgdm(beta=0.9)"``, ``"adam(beta1=0.9, beta2=0.999, eps=1e-8)"``, or a plugin's."""
    return BASE_OPTIMIZERS.create(spec)
