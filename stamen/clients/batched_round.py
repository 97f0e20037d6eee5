"""One round's train messages to several nodes, trained together (``BatchedSGD``).

The in-process engine hands a round's train messages here when ``batch-clients`` is on.
Every node's work is prepared exactly as the ClientApp prepares it (``LocalTraining``): its
batches, its seed, its label attack; the clients then train in one ``torch.func`` call, and
each reply is built by the ClientApp's own code (update attacks, worker momentum, secure
shares). The replies equal those of the one-by-one path to float rounding.

What cannot be batched returns a reason instead, and the engine trains one by one: Mime's
messages, FedProx's proximal term, epochs (clients' step counts differ), batches of unequal
sizes, clients of different architectures or settings, and models with batch norm.
"""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Message

from stamen.clients.batched_training import BatchedSGD
from stamen.clients.client_app import LocalTraining
from stamen.clients.training import minibatches
from stamen.strategies.mime import STATE_KEY


def train_together(tasks: list[LocalTraining]) -> list[Message] | str:
    """The tasks' replies, trained as one batch, or why they cannot be."""
    first = tasks[0]
    if any(STATE_KEY in task.msg.content for task in tasks):
        return "Mime's local steps are not batched"
    settings = first.settings
    if settings.proximal_mu or settings.local_steps == 0:
        return "only fixed local-steps without a proximal term are batched"
    if any(t.settings != settings or t.model is not first.model for t in tasks):
        return "the clients differ in architecture or settings"
    inputs, labels = [], []
    for task in tasks:
        label_map = task.label_map()
        batches = [task.data.to_tensors(task.data.train, b) for b in _batches(task)]
        if len({len(y) for _, y in batches}) != 1:
            return "a client's batches differ in size"
        inputs.append(torch.stack([x for x, _ in batches]))
        labels.append(torch.stack([label_map(y) if label_map else y for _, y in batches]))
    if len({tuple(x.shape) for x in inputs}) != 1:
        return "the clients' batches differ in size"
    try:
        trainer = BatchedSGD(first.model, settings.lr, settings.momentum, settings.weight_decay)
    except ValueError as exc:
        return str(exc)
    device = first.device
    params, losses = trainer.run(
        torch.stack(inputs).to(device), torch.stack(labels).to(device), [t.seed for t in tasks]
    )
    replies = []
    for k, task in enumerate(tasks):
        state = {key: params[key][k] if key in params else v for key, v in task.start.items()}
        metrics = {"train-loss": float(losses[k]), "num-examples": len(task.indices)}
        replies.append(task.reply(state, metrics))
    return replies


def _batches(task: LocalTraining) -> list[np.ndarray]:
    return list(minibatches(task.indices, task.settings, task.rng()))
