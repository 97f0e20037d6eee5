"""One round's train messages to several nodes, trained together (``BatchedSGD``).

The in-process engine hands a round's train messages here when ``batch-clients`` is on.
Every node's work is prepared exactly as the ClientApp prepares it (``LocalTraining``): its
batches, its seed, its label attack; the clients then train in one ``torch.func`` call, and
each reply is built by the ClientApp's own code (update attacks, worker momentum, secure
shares). The replies equal those of the one-by-one path to float rounding.

Only message types with a registered batched step (``BATCHED_STEPS``: the default ``train``
action and ``train.secure``) are batched; any other action (Mime's ``train.mime``, a new
algorithm's) is trained one by one, never silently as plain SGD. What cannot be batched
returns a reason instead, and the engine trains one by one: other actions, FedProx's
proximal term, epochs (clients' step counts differ), batches of unequal
sizes, clients of different architectures or settings, and models with batch norm.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message, MessageType

from stamen.clients.batched_training import BatchedSGD
from stamen.clients.local_training import LocalTraining
from stamen.clients.node import experiment_of
from stamen.clients.training import TrainSettings, minibatches
from stamen.messages.keys import CONFIG, MODEL, NUM_EXAMPLES, SECURE_TRAIN

# Message types whose client step has a batched form, mapped to how one node's work is
# prepared. An algorithm whose step is local SGD with its own reply registers here.
BATCHED_STEPS: dict[str, Callable[[Message, Context], LocalTraining]] = {
    MessageType.TRAIN: LocalTraining.of,
    SECURE_TRAIN: functools.partial(LocalTraining.of, secure=True),
}


@dataclass
class PreparedRound:
    """One run's round of train messages, every node's work prepared as the ClientApp does."""

    tasks: list[LocalTraining]
    inputs: torch.Tensor  # (K, steps, B, ...): client k's batch of each step, on the device
    labels: torch.Tensor  # (K, steps, B)
    trainer: BatchedSGD  # built on the run's model, which holds the round's global model

    @property
    def seeds(self) -> list[int]:
        return [task.seed for task in self.tasks]

    @property
    def key(self) -> tuple:
        """Rounds with equal keys (architecture, SGD settings, batch shapes, device, pruned
        tensors and feedback) can be trained in one call, also when they belong to
        different runs."""
        first = self.tasks[0]
        model = str(first.config.get(MODEL, first.experiment.model))
        settings = (first.settings.lr, first.settings.momentum, first.settings.weight_decay)
        shapes = tuple(self.inputs.shape[1:])
        pruned = (
            (tuple(sorted(first.pruned.masks)), first.pruned.feedback) if first.pruned else None
        )
        return (model, first.experiment.dataset, settings, shapes, str(first.device), pruned)

    def start(self) -> dict[str, torch.Tensor]:
        """Every client's start (the global model's parameters), stacked (K, ...)."""
        clients = len(self.tasks)
        return {
            name: p.detach().expand(clients, *p.shape)
            for name, p in self.tasks[0].model.named_parameters()
        }

    def masks(self) -> dict[str, torch.Tensor]:
        """The pruned model's masks, stacked (K, ...) like ``start``; none if dense."""
        pruned, clients = self.tasks[0].pruned, len(self.tasks)
        masks = pruned.masks if pruned else {}
        return {name: mask.expand(clients, *mask.shape) for name, mask in masks.items()}

    @property
    def feedback(self) -> bool:
        pruned = self.tasks[0].pruned
        return pruned is None or pruned.feedback

    def train(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """This round alone: the clients' parameters (K, ...) and mean losses (K,)."""
        return self.trainer.run(
            self.inputs, self.labels, self.seeds, masks=self.masks(), feedback=self.feedback
        )

    def replies(self, params: dict[str, torch.Tensor], losses: torch.Tensor) -> list[Message]:
        """Each node's reply to its trained parameters ``params[name][k]``, built by the
        ClientApp's own code."""
        global_state = self.tasks[0].model.state_dict()  # training leaves it as is
        replies = []
        for k, task in enumerate(self.tasks):
            state = {key: params[key][k] if key in params else v for key, v in global_state.items()}
            metrics = {"train-loss": float(losses[k]), NUM_EXAMPLES: len(task.indices)}
            replies.append(task.reply(state, metrics))
        return replies


def train_together(
    messages: list[Message],
    contexts: dict[int, Context],
    train: Callable[[PreparedRound], tuple[dict[str, torch.Tensor], torch.Tensor]] = (
        PreparedRound.train
    ),
) -> list[Message] | str:
    """The replies to ``messages`` (train messages to the nodes of ``contexts``, by node
    id), trained as one batch by ``train`` (this round alone by default; ``RunBatcher``
    trains several runs' rounds together), or why they cannot be."""
    prepared = prepare_round(messages, contexts)
    if isinstance(prepared, str):
        return prepared
    return prepared.replies(*train(prepared))


def prepare_round(messages: list[Message], contexts: dict[int, Context]) -> PreparedRound | str:
    """Every node's work for ``messages``, or why they cannot be trained together. What the
    messages alone decide is checked before any node's work is prepared."""
    reason = _unbatchable(messages, contexts)
    if reason:
        return reason
    prepare = BATCHED_STEPS[messages[0].metadata.message_type]
    tasks = [prepare(m, contexts[m.metadata.dst_node_id]) for m in messages]
    first, settings = tasks[0], tasks[0].settings
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
    return PreparedRound(
        tasks, torch.stack(inputs).to(device), torch.stack(labels).to(device), trainer
    )


def _unbatchable(messages: list[Message], contexts: dict[int, Context]) -> str | None:
    """Why the messages' own settings rule batching out, or None."""
    types = {m.metadata.message_type for m in messages}
    if len(types) > 1:
        return f"the messages mix actions ({', '.join(sorted(types))})"
    if types - set(BATCHED_STEPS):
        return f"{types.pop()} has no batched step"
    found = set()
    for message in messages:
        experiment = experiment_of(contexts[message.metadata.dst_node_id])
        config = message.content.get(CONFIG, ConfigRecord())
        settings = TrainSettings.from_config(config, experiment)
        if settings.proximal_mu or settings.local_steps == 0:
            return "only fixed local-steps without a proximal term are batched"
        found.add((settings, str(config.get(MODEL, experiment.model))))
    return "the clients differ in architecture or settings" if len(found) > 1 else None


def _batches(task: LocalTraining) -> list[np.ndarray]:
    return list(minibatches(task.indices, task.settings, task.rng()))
