"""Mime's and MimeLite's client side (Karimireddy et al., arXiv 2008.03606, Algorithm 1).

``full_batch_gradient`` is ``grad f_i(x)`` over the client's data (or some of its batches).
``mime_train`` runs the local steps ``y <- y - lr * U(d, s)`` from ``y = x`` with the server's
base-optimizer state ``s`` frozen, where the direction is

* MimeLite: ``d = g_i(y; batch)``;
* Mime: ``d = g_i(y; batch) - g_i(x; batch) + c``, both gradients on the same mini-batch (and
  the same dropout mask), ``c`` the server's mean full-batch gradient at ``x``.

Gradients are flat vectors over ``model.parameters()`` in order, as the server keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from stamen.algorithms.mime.base_optimizers import BaseOptimizer, OptimizerState
from stamen.clients.training import TrainSettings, minibatches
from stamen.datasets import FederatedDataset


def flat_gradient(model: torch.nn.Module) -> Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def full_batch_gradient(
    model: torch.nn.Module,
    data: FederatedDataset,
    indices: np.ndarray,
    device: torch.device,
    chunk_size: int = 1000,
    max_batches: int = 0,
    batch_size: int = 32,
    rng: np.random.Generator | None = None,
) -> Tensor:
    """``grad f_i(x)``: the gradient of the mean loss over ``data.train[indices]``.

    With ``max_batches > 0``, over ``max_batches`` training batches of ``batch_size``
    examples drawn without replacement by ``rng`` instead (a cheaper estimate). The
    examples are processed ``chunk_size`` at a time; the model is in training mode, as in
    the local steps.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    order = indices
    if max_batches > 0:
        if rng is None:
            raise ValueError("full_batch_gradient: max_batches > 0 needs an rng")
        order = rng.permutation(indices)[: max_batches * batch_size]
    for start in range(0, len(order), chunk_size):
        batch = order[start : start + chunk_size]
        x, y = (t.to(device, non_blocking=True) for t in data.to_tensors(data.train, batch))
        (F.cross_entropy(model(x), y, reduction="sum") / len(order)).backward()
    return flat_gradient(model).detach()


Point = dict[str, Tensor]
Gradient = Callable[[Point, Any], tuple[Tensor, Tensor]]


def mime_steps(
    y: Point,
    batches: Iterable[Any],
    gradient: Gradient,
    optimizer: BaseOptimizer,
    state: OptimizerState,
    control_variate: Tensor | None = None,
    x: Point | None = None,
    lr: float = 0.01,
) -> Tensor:
    """Mime's local loop: ``y <- y - lr * U(d, s)`` per batch, ``y`` updated in place.

    ``gradient(point, batch)`` gives ``(flat gradient, summed loss)`` at ``point`` on
    ``batch``; ``d`` is ``g(y)`` (MimeLite) or ``g(y) - g(x) + c`` (Mime, ``x`` and ``c``
    given). ``state`` is only read. Returns the sum of the losses at ``y``.
    """
    sizes = [v.numel() for v in y.values()]
    loss_sum = torch.zeros(())
    for batch in batches:
        direction, loss = gradient(y, batch)
        if control_variate is not None:
            direction = direction - gradient(x, batch)[0] + control_variate
        step = optimizer.direction(direction, state)
        with torch.no_grad():
            for value, chunk in zip(y.values(), torch.split(step, sizes)):
                value.sub_(lr * chunk.view_as(value))
        loss_sum = loss_sum + loss.detach().cpu()
    return loss_sum


def mime_train(
    model: torch.nn.Module,
    data: FederatedDataset,
    indices: np.ndarray,
    settings: TrainSettings,
    optimizer: BaseOptimizer,
    state: OptimizerState,
    control_variate: Tensor | None,
    rng: np.random.Generator,
    device: torch.device,
) -> dict[str, float]:
    """Mime's local steps on ``model`` in place (MimeLite when ``control_variate`` is None).

    Both gradients of a Mime step see the same batch and the same dropout mask; the
    gradient at ``x`` uses copies of the buffers, so only ``y`` moves BatchNorm statistics.
    Returns the mean training loss and the example count.
    """
    model.train()
    y = dict(model.named_parameters())
    x = {name: p.detach().clone().requires_grad_(True) for name, p in y.items()}
    own_buffers = dict(model.named_buffers())
    x_buffers = {name: b.detach().clone() for name, b in own_buffers.items()}

    def gradient(point: Point, batch: tuple[np.ndarray, int]) -> tuple[Tensor, Tensor]:
        rows, dropout_seed = batch
        inputs, labels = (t.to(device) for t in data.to_tensors(data.train, rows))
        torch.manual_seed(dropout_seed)
        buffers = own_buffers if point is y else x_buffers
        loss = F.cross_entropy(functional_call(model, (point, buffers), (inputs,)), labels)
        grads = torch.autograd.grad(loss, list(point.values()))
        return torch.cat([g.reshape(-1) for g in grads]), loss * len(rows)

    rows = minibatches(indices, settings, rng)
    batches = [(batch, int(torch.randint(2**62, ()))) for batch in rows]
    loss_sum = mime_steps(y, batches, gradient, optimizer, state, control_variate, x, settings.lr)
    seen = sum(len(rows) for rows, _ in batches)
    return {"train-loss": float(loss_sum) / max(seen, 1), "num-examples": len(indices)}
