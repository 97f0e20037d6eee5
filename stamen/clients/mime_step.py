"""Mime's and MimeLite's client step (Karimireddy et al., arXiv 2008.03606): local steps
with the server's optimizer state frozen, and the full-batch gradient at the global model.

Without a control variate (MimeLite) the train reply also carries ``grad f_i(x)``,
computed before the local steps."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict

from stamen.algorithms.mime.base_optimizers import create_base_optimizer
from stamen.clients.mime_training import full_batch_gradient, mime_train
from stamen.clients.node import experiment_of, load_global_model, node_data, node_partition
from stamen.clients.training import TrainSettings
from stamen.datasets import FederatedDataset
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout, record_tensors, tensors_record
from stamen.messages.keys import (
    ARRAYS,
    BASE_OPTIMIZER,
    CONFIG,
    CONTROL_KEY,
    GRADIENT_BATCHES,
    GRADIENT_KEY,
    METRICS,
    NUM_EXAMPLES,
    SERVER_ROUND,
    STATE_KEY,
)
from stamen.seeding import ClientStream, client_rng, torch_seeded


def mime_train_reply(msg: Message, context: Context) -> Message:
    """The local steps from the global model with the server's state ``s`` frozen (and,
    for Mime, the control variate ``c``); MimeLite adds ``grad f_i(x)``."""
    task = MimeTask.of(msg, context)
    optimizer = create_base_optimizer(str(task.config[BASE_OPTIMIZER]))
    state = {k: v.to(task.device) for k, v in record_tensors(msg.content[STATE_KEY]).items()}
    if not state:  # the server has no state yet: start from the initial one
        parameters = dict(task.model.named_parameters())
        x = ArrayLayout.of_state(parameters).flatten_state(parameters).detach()
        state = optimizer.init_state(x)
    control = None
    if CONTROL_KEY in msg.content:
        control = record_tensors(msg.content[CONTROL_KEY])[CONTROL_KEY].to(task.device)
    content = RecordDict()
    with task.seeded_torch():
        if control is None:
            content[GRADIENT_KEY] = tensors_record({GRADIENT_KEY: task.full_batch_gradient()})
        metrics = mime_train(
            task.model,
            task.data,
            task.indices,
            TrainSettings.from_config(task.config, task.experiment),
            optimizer,
            state,
            control,
            client_rng(task.experiment.seed, task.server_round, task.partition_id),
            task.device,
        )
    content[ARRAYS] = ArrayRecord(task.model.state_dict())
    content[METRICS] = MetricRecord(metrics)
    return Message(content, reply_to=msg)


def gradient_reply(msg: Message, context: Context) -> Message:
    """Mime's gradient phase: ``grad f_i(x)`` over this client's data."""
    task = MimeTask.of(msg, context)
    with task.seeded_torch():
        gradient = task.full_batch_gradient()
    metrics = MetricRecord({NUM_EXAMPLES: len(task.indices)})
    content = RecordDict({GRADIENT_KEY: tensors_record({GRADIENT_KEY: gradient}), METRICS: metrics})
    return Message(content, reply_to=msg)


@dataclass(frozen=True)
class MimeTask:
    """What a Mime message asks of this node: the model at ``x``, its data, the round."""

    experiment: Experiment
    config: ConfigRecord
    partition_id: int
    server_round: int
    model: torch.nn.Module
    device: torch.device
    data: FederatedDataset
    indices: np.ndarray

    @classmethod
    def of(cls, msg: Message, context: Context) -> MimeTask:
        experiment = experiment_of(context)
        partition_id, _ = node_partition(context)
        config = msg.content[CONFIG]
        model, device = load_global_model(experiment, msg.content[ARRAYS])
        data, indices = node_data(experiment, context, "train")
        server_round = int(config.get(SERVER_ROUND, 0))
        return cls(experiment, config, partition_id, server_round, model, device, data, indices)

    @contextlib.contextmanager
    def seeded_torch(self) -> Iterator[None]:
        """Torch's RNG (dropout) seeded from (seed, round, partition), restored after."""
        seed = client_rng(
            self.experiment.seed, self.server_round, self.partition_id, ClientStream.DROPOUT
        )
        with torch_seeded(int(seed.integers(2**62)), self.device):
            yield

    def full_batch_gradient(self) -> torch.Tensor:
        settings = TrainSettings.from_config(self.config, self.experiment)
        return full_batch_gradient(
            self.model,
            self.data,
            self.indices,
            self.device,
            chunk_size=self.experiment.eval_batch_size,
            max_batches=int(self.config.get(GRADIENT_BATCHES, 0)),
            batch_size=settings.batch_size,
            rng=client_rng(
                self.experiment.seed,
                self.server_round,
                self.partition_id,
                ClientStream.GRADIENT_BATCHES,
            ),
        )
