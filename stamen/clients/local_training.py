"""One train message's work on this node: local SGD on its data, at the pruned model when
the server prunes (``run``; several nodes at once in ``batched_round``), then the reply
(``reply``): the trained model, or the update through the node's reply chain (attack or
worker momentum, clipping and noise) as a model, as a compressed update (``uplink``) or as
secure shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from flwr.app import ConfigRecord, Context, Message, MetricRecord, RecordDict

from stamen.algorithms.compression import Compression
from stamen.algorithms.compression.settings import uplink_of
from stamen.algorithms.pruning.settings import pruning_of
from stamen.attacks import ClientAttack
from stamen.clients.byzantine import client_attack
from stamen.clients.compressed_update import MEMORY_KEY, compress_update
from stamen.clients.node import (
    experiment_of,
    load_global_model,
    node_attack,
    node_data,
    node_memory,
    node_partition,
)
from stamen.clients.pruned_training import PrunedTraining
from stamen.clients.received_model import received_masks, received_model
from stamen.clients.reply_chain import chain, clipped_and_noised, poisoned, worker_momentum
from stamen.clients.secure_update import secret_generator, secure_reply
from stamen.clients.training import TrainSettings, train
from stamen.clients.updates import flat_delta, with_delta
from stamen.clients.worker_momentum import MOMENTUM_KEY
from stamen.datasets import FederatedDataset
from stamen.experiment import Experiment
from stamen.messages.arrays import state_record
from stamen.messages.keys import (
    ARRAYS,
    COMPRESSED,
    CONFIG,
    METRICS,
    MODEL,
    SECURE_CLIP,
    SECURE_NOISE,
    SERVER_ROUND,
)
from stamen.seeding import client_rng, torch_seeded


@dataclass
class LocalTraining:
    """A train message's task on this node, prepared once (``of``)."""

    msg: Message
    context: Context
    experiment: Experiment
    config: ConfigRecord
    partition_id: int
    server_round: int
    seed: int
    data: FederatedDataset
    indices: np.ndarray
    settings: TrainSettings
    attack: ClientAttack | None
    secure: bool  # reply with secret shares (secure aggregation's action)
    compression: Compression | None  # of the update (``uplink``; never for secure shares)
    model: torch.nn.Module
    device: torch.device
    start: dict[str, torch.Tensor]  # the global model when the reply sends an update, else {}
    pruned: PrunedTraining | None  # the masks of a pruned global model

    @classmethod
    def of(
        cls, msg: Message, context: Context, secure: bool = False, keep_start: bool = False
    ) -> LocalTraining:
        """The task of ``msg``; ``keep_start``: keep the global model for the update, as
        the reply sends one (also implied by an attack, worker momentum, secure shares and
        uplink compression)."""
        experiment = experiment_of(context)
        partition_id, _ = node_partition(context)
        config = msg.content.get(CONFIG, ConfigRecord())
        arrays = received_model(msg, context, experiment)
        model, device = load_global_model(experiment, arrays, config.get(MODEL))
        pruning = pruning_of(experiment)
        feedback = pruning is not None and pruning.feedback
        pruned = PrunedTraining.of(received_masks(msg), feedback, device)
        server_round = int(config.get(SERVER_ROUND, 0))
        seed = int(client_rng(experiment.seed, server_round, partition_id).integers(2**62))
        data, indices = node_data(experiment, context, "train")
        attack = client_attack(experiment, partition_id, node_attack(context))
        compression = None if secure else uplink_of(experiment, server_round)
        sends_update = keep_start or any(
            (attack is not None, experiment.worker_momentum > 0, secure, compression is not None)
        )
        # the global model, kept only when the reply is built from the update
        start = {k: v.clone() for k, v in model.state_dict().items()} if sends_update else {}
        settings = TrainSettings.from_config(config, experiment)
        return cls(
            msg, context, experiment, config, partition_id, server_round, seed, data, indices,
            settings, attack, secure, compression, model, device, start, pruned,
        )  # fmt: skip

    def rng(self) -> np.random.Generator:
        """The node's batch stream of this round."""
        return client_rng(self.experiment.seed, self.server_round, self.partition_id)

    def label_map(self) -> Callable[[torch.Tensor], torch.Tensor] | None:
        attack, classes = self.attack, self.data.num_classes
        return (lambda y: attack.poison_labels(y, classes)) if attack else None

    def run(self) -> dict[str, float]:
        """Train ``model`` in place, one client alone; return its metrics."""
        with torch_seeded(self.seed, self.device):
            return train(
                self.model,
                self.data,
                self.indices,
                self.settings,
                self.rng(),
                self.device,
                label_map=self.label_map(),
                pruned=self.pruned,
            )

    def reply(self, state: dict[str, torch.Tensor], metrics: dict[str, float]) -> Message:
        """The reply for the trained ``state`` (a state dict)."""
        if not self.start:  # no attack, no worker momentum, no secure shares: the model
            content = RecordDict({ARRAYS: state_record(state), METRICS: MetricRecord(metrics)})
            return Message(content, reply_to=self.msg)
        update = self.transform()(flat_delta(self.start, state))
        if self.secure:
            return secure_reply(self.msg, update, self.config, self.context, metrics)
        if self.compression is not None:
            memory = node_memory(self.context, self.experiment, MEMORY_KEY)
            record = compress_update(
                self.compression, update, state, memory, self.experiment.seed,
                self.server_round, self.partition_id,
            )  # fmt: skip
            content = RecordDict({COMPRESSED: record, METRICS: MetricRecord(metrics)})
            return Message(content, reply_to=self.msg)
        state = with_delta(self.start, state, update)
        content = RecordDict({ARRAYS: state_record(state), METRICS: MetricRecord(metrics)})
        return Message(content, reply_to=self.msg)

    def transform(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The node's reply chain before encoding: its attack (Byzantine nodes use no
        momentum) or its worker momentum, then, for secure shares, clipping and noise drawn
        from a CSPRNG."""
        beta = self.experiment.worker_momentum
        if self.attack is not None:
            first = poisoned(self.attack, self.seed)
        elif beta > 0:
            memory = node_memory(self.context, self.experiment, MOMENTUM_KEY)
            first = worker_momentum(memory, beta, self.server_round)
        else:
            first = None
        protect = None
        if self.secure:
            clip, noise = float(self.config[SECURE_CLIP]), float(self.config.get(SECURE_NOISE, 0))
            protect = clipped_and_noised(clip, noise, secret_generator())
        return chain(first, protect)
