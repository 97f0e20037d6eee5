"""Plain local training and evaluation loops, independent of Flower.

``train`` runs local SGD (FedAvg's ClientUpdate, McMahan et al., arXiv 1602.05629) for a number
of epochs or steps, with momentum, weight decay and FedProx's proximal term (Li et al.,
arXiv 1812.06127). Batches are drawn from a ``numpy.random.Generator`` and dropout from a
torch seed given by the caller, so the same inputs give the same model on every engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stamen.clients.pruned_training import PrunedTraining
from stamen.datasets import FederatedDataset, Split


@dataclass(frozen=True)
class TrainSettings:
    """Local training hyper-parameters; ``local_steps > 0`` takes precedence over epochs."""

    local_epochs: int = 1
    local_steps: int = 0
    batch_size: int = 32
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0
    proximal_mu: float = 0.0

    @classmethod
    def from_config(cls, config: Mapping[str, Any], fallback: Any) -> TrainSettings:
        """Settings from a message's config, falling back to an Experiment's values."""

        def pick(name: str) -> Any:
            return config.get(name.replace("_", "-"), getattr(fallback, name, None))

        return cls(
            local_epochs=int(pick("local_epochs")),
            local_steps=int(pick("local_steps")),
            batch_size=int(pick("batch_size")),
            lr=float(pick("lr")),
            momentum=float(pick("momentum")),
            weight_decay=float(pick("weight_decay")),
            # flwr's FedProx sends "proximal-mu"; other strategies send none: no term.
            proximal_mu=float(config.get("proximal-mu", 0.0)),
        )


def minibatches(
    indices: np.ndarray, settings: TrainSettings, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Shuffled mini-batches: ``local_steps`` batches, or ``local_epochs`` passes."""
    batch = settings.batch_size
    if settings.local_steps > 0:
        drawn = 0
        while drawn < settings.local_steps:
            order = rng.permutation(indices)
            for start in range(0, len(order), batch):
                yield order[start : start + batch]
                drawn += 1
                if drawn == settings.local_steps:
                    return
    else:
        for _ in range(settings.local_epochs):
            order = rng.permutation(indices)
            for start in range(0, len(order), batch):
                yield order[start : start + batch]


def train(
    model: torch.nn.Module,
    data: FederatedDataset,
    indices: np.ndarray,
    settings: TrainSettings,
    rng: np.random.Generator,
    device: torch.device,
    label_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
    pruned: PrunedTraining | None = None,
) -> dict[str, float]:
    """Train ``model`` in place on ``data.train[indices]``; return loss and example count.

    ``label_map`` replaces each batch's labels (a label-flipping client); ``pruned`` takes
    each step at the pruned model the node was sent.
    """
    model.train()
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=settings.lr,
        momentum=settings.momentum,
        weight_decay=settings.weight_decay,
    )
    anchor = [p.detach().clone() for p in model.parameters()] if settings.proximal_mu else []
    loss_sum = torch.zeros((), device=device)
    seen = 0
    for batch in minibatches(indices, settings, rng):
        x, y = (t.to(device, non_blocking=True) for t in data.to_tensors(data.train, batch))
        if label_map is not None:
            y = label_map(y)
        with pruned.step(model) if pruned else nullcontext():
            loss = F.cross_entropy(model(x), y)
            if anchor:
                loss = loss + settings.proximal_mu / 2 * sum(
                    (p - a).pow(2).sum() for p, a in zip(model.parameters(), anchor)
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(batch)
        seen += len(batch)
    return {"train-loss": float(loss_sum) / max(seen, 1), "num-examples": len(indices)}


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    data: FederatedDataset,
    split: Split,
    indices: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Mean cross-entropy and accuracy of ``model`` on ``split[indices]``."""
    model.eval()
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct = torch.zeros((), device=device, dtype=torch.int64)
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        x, y = (t.to(device, non_blocking=True) for t in data.to_tensors(split, batch))
        logits = model(x)
        loss_sum += F.cross_entropy(logits, y, reduction="sum").double()
        correct += (logits.argmax(dim=1) == y).sum()
    count = max(len(indices), 1)
    return {
        "loss": float(loss_sum) / count,
        "accuracy": float(correct) / count,
        "num-examples": len(indices),
    }
