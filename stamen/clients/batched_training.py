"""Local SGD of many clients at once: parameters stacked along a client axis, ``torch.func``.

Each client runs ``torch.optim.SGD`` (momentum, weight decay) from the same global model on
its own batches, exactly as ``training.train`` does one client at a time; here one
``vmap(grad(loss))`` call computes every client's step. Dropout draws the same masks as the
one-by-one path: a client seeded with ``seed`` there calls ``torch.manual_seed(seed)`` and its
dropout layers draw ``bernoulli(1 - p) / (1 - p)`` in layer order, step after step; here each
client's ``torch.Generator`` seeded the same way draws those masks, which enter a copy of the
model whose dropout layers multiply by a given mask. Per-client results equal the one-by-one
path to float rounding (``p - lr * g`` against SGD's fused update). Clients of a pruned
model (``masks``) take each gradient at ``m * w`` as ``pruned_training`` does: applied to the
dense weights with feedback (DPF), to the kept ones only without.

Torch only (no flwr): it runs and is measured on a bare GPU machine (``benchmarks/gpu.py``).
On a CPU core the one-by-one loop is faster (about 1.8x for the bucketing CNN); this path is
for GPUs, where the clients' small batches alone leave the device idle.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

# Batch statistics mix a client's samples with the running state: not a per-client function.
_UNBATCHABLE = (nn.modules.batchnorm._BatchNorm,)


class _MaskedDropout(nn.Module):
    """Dropout with its scaled mask given (buffer ``mask``)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mask", torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.mask


@dataclass(frozen=True)
class _Dropout:
    name: str  # the module's name in the model
    p: float
    sample_shape: tuple[int, ...]  # mask shape of one sample: (C, 1, 1) for Dropout2d


class BatchedSGD:
    """Runs ``K`` clients' local SGD steps of one architecture (``model``) in one call."""

    def __init__(
        self, model: nn.Module, lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        unbatchable = [type(m).__name__ for m in model.modules() if isinstance(m, _UNBATCHABLE)]
        if unbatchable:
            raise ValueError(f"cannot batch clients of a model with {unbatchable[0]}")
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.functional = copy.deepcopy(model)
        self.dropouts: list[_Dropout] = []
        self._model = model

    def run(
        self,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        seeds: list[int],
        start: dict[str, torch.Tensor] | None = None,
        masks: dict[str, torch.Tensor] | None = None,
        feedback: bool = True,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``inputs`` (K, steps, B, ...) and ``labels`` (K, steps, B): client k's batch of
        each step; ``seeds``: client k's torch seed; ``start``: each client's parameters
        before the steps, stacked along a first axis of size K (clients of several runs
        start from their runs' models), by default the model's own; ``masks``: the pruned
        model's 0/1 masks of some parameters, stacked likewise, and whether the pruned
        weights take the steps (``feedback``). Returns the clients' parameters after the
        steps, stacked likewise, and each client's mean training loss over its steps (K,)."""
        masks = masks or {}
        clients, steps, batch = labels.shape
        if not self.dropouts:
            self._find_dropouts(inputs[0, 0])
        if start is None:
            own = {name: p.detach() for name, p in self._model.named_parameters()}
            start = {n: p.expand(clients, *p.shape) for n, p in own.items()}
        params = {n: p.clone() for n, p in start.items()}
        velocity: dict[str, torch.Tensor] = {}
        generators = [torch.Generator(inputs.device).manual_seed(seed) for seed in seeds]
        step_grad = vmap(grad_and_value(self._loss))
        losses = torch.zeros(clients, device=inputs.device)
        for step in range(steps):
            dropout = self._dropout_masks(generators, batch, inputs.device)
            pruned = {n: p * masks[n] if n in masks else p for n, p in params.items()}
            grads, loss = step_grad(pruned, dropout, inputs[:, step], labels[:, step])
            losses += loss.detach()
            for name, g in grads.items():
                if name in masks and not feedback:
                    g = g * masks[name]
                if self.weight_decay:
                    g = g + self.weight_decay * params[name]
                if self.momentum:
                    velocity[name] = g if step == 0 else self.momentum * velocity[name] + g
                    g = velocity[name]
                params[name] = params[name] - self.lr * g
        return params, losses / steps

    def _loss(self, params, dropout, x, y) -> torch.Tensor:  # noqa: ANN001 (torch.func pytrees)
        buffers = {f"{name}.mask": mask for name, mask in dropout.items()}
        return F.cross_entropy(functional_call(self.functional, {**params, **buffers}, (x,)), y)

    def _dropout_masks(
        self, generators: list[torch.Generator], batch: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """Every client's masks for one step, in the order its dropout layers draw them."""
        per_client = []
        for generator in generators:
            masks = {}
            for dropout in self.dropouts:
                noise = torch.empty((batch, *dropout.sample_shape), device=device)
                masks[dropout.name] = noise.bernoulli_(1 - dropout.p, generator=generator).div_(
                    1 - dropout.p
                )
            per_client.append(masks)
        return {d.name: torch.stack([m[d.name] for m in per_client]) for d in self.dropouts}

    def _find_dropouts(self, sample_batch: torch.Tensor) -> None:
        """Record each dropout layer's mask shape and the order the layers run in (one
        forward pass in eval mode: no random draw), and swap each for a masked layer in
        the functional copy."""
        found: dict[str, tuple[int, ...]] = {}
        hooks = []
        for name, module in self._model.named_modules():
            if isinstance(module, (nn.Dropout, nn.Dropout2d)):
                hooks.append(module.register_forward_pre_hook(_recorder(name, module, found)))
        training = self._model.training
        self._model.eval()
        with torch.no_grad():
            self._model(sample_batch)
        self._model.train(training)
        for hook in hooks:
            hook.remove()
        modules = dict(self._model.named_modules())
        for name, shape in found.items():  # in the order the forward pass ran them
            self.dropouts.append(_Dropout(name, float(modules[name].p), shape))
            self.functional.set_submodule(name, _MaskedDropout())


def _recorder(name: str, module: nn.Module, found: dict[str, tuple[int, ...]]):  # noqa: ANN202
    """A forward pre-hook noting the mask shape of one sample: ``(C, 1, ...)`` for
    ``Dropout2d`` (a channel's units drop together), the input's shape for ``Dropout``."""

    def hook(_: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        x = args[0]
        channelwise = isinstance(module, nn.Dropout2d)
        found[name] = (x.shape[1], *[1] * (x.dim() - 2)) if channelwise else tuple(x.shape[1:])

    return hook
