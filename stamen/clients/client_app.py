"""Stamen's Flower ClientApp (Message API): train, evaluate and query handlers.

Handlers only translate messages: they unpack ``"arrays"`` and ``"config"``, call the plain
functions of :mod:`stamen.clients.training`, and reply with ``"arrays"`` and a
``MetricRecord`` holding ``"num-examples"``, as Flower's own strategies expect. Settings a
message does not carry fall back to the run config, so flwr's built-in strategies work too.
The node's data comes from its node config: its partition (``partition-id``,
``num-partitions``) of the run's data set, or its own files (``data``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from flwr.app import (
    Array,
    ArrayRecord,
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp
from flwr.common.constant import ErrorCode
from torch.nn.utils import parameters_to_vector

from stamen.attacks import ClientAttack
from stamen.clients.byzantine import client_attack
from stamen.clients.local_data import client_rng, dataset_of, test_partitions, train_partitions
from stamen.clients.mime_training import full_batch_gradient, mime_train
from stamen.clients.node_settings import secure_ca, sends_plaintext_oracle
from stamen.clients.secure_update import (
    ORACLE_RECORD,
    SECURE_RECORD,
    clip_and_noise,
    offered_s2_key,
    secret_generator,
    shared_update,
)
from stamen.clients.training import TrainSettings, evaluate, resolve_device, train
from stamen.clients.updates import flat_delta, with_delta
from stamen.clients.worker_momentum import apply_worker_momentum
from stamen.datasets import FederatedDataset, load_dataset
from stamen.models import create_model
from stamen.secure.key_binding import KeyBindingError, verified_key
from stamen.seeding import torch_seeded
from stamen.simulations.config import Experiment
from stamen.strategies.base_optimizers import create_base_optimizer
from stamen.strategies.flat_updates import array_values, state_record
from stamen.strategies.mime import CONTROL_KEY, GRADIENT_KEY, STATE_KEY, from_record, to_record

log = logging.getLogger(__name__)

app = ClientApp()


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Load the global model, train locally, and reply with the new model."""
    if STATE_KEY in msg.content:
        return mime_train_handler(msg, context)
    task = LocalTraining.of(msg, context)
    return task.reply(task.model.state_dict(), task.run())


@dataclass
class LocalTraining:
    """One train message's work: local SGD on this node's data (``run``, or several nodes
    at once in ``batched_engine``), then the reply (``reply``): the model, or the update
    after the node's attack or worker momentum, or its secure shares."""

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
    model: torch.nn.Module
    device: torch.device
    start: dict[str, torch.Tensor]  # the global model when the reply sends an update, else {}

    @classmethod
    def of(cls, msg: Message, context: Context) -> LocalTraining:
        experiment = experiment_of(context)
        partition_id, _ = node_partition(context)
        config = msg.content.get("config", ConfigRecord())
        model, device = load_global_model(experiment, msg.content["arrays"], config.get("model"))
        server_round = int(config.get("server-round", 0))
        seed = int(client_rng(experiment.seed, server_round, partition_id).integers(2**62))
        data, indices = node_data(experiment, context, "train")
        attack = client_attack(experiment, partition_id, node_attack(context))
        sends_update = (
            attack is not None or experiment.worker_momentum > 0 or "secure-key" in config
        )
        # the global model, kept only when the reply is built from the update
        start = {k: v.clone() for k, v in model.state_dict().items()} if sends_update else {}
        settings = TrainSettings.from_config(config, experiment)
        return cls(
            msg, context, experiment, config, partition_id, server_round, seed, data, indices,
            settings, attack, model, device, start,
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
            )

    def reply(self, state: dict[str, torch.Tensor], metrics: dict[str, float]) -> Message:
        """The reply for the trained ``state`` (a state dict)."""
        experiment, attack = self.experiment, self.attack
        secure = "secure-key" in self.config
        if not self.start:  # no attack, no worker momentum, no secure shares: the model
            content = RecordDict({"arrays": state_record(state), "metrics": MetricRecord(metrics)})
            return Message(content, reply_to=self.msg)
        update = flat_delta(self.start, state)
        if attack:  # Byzantine clients use no momentum
            update = attack.poison_update(update, torch.Generator().manual_seed(self.seed))
        else:
            store = node_state_file(experiment, self.partition_id)
            update = apply_worker_momentum(
                self.context.state, update, experiment.worker_momentum, self.server_round, store
            )
        if secure:
            return secure_reply(self.msg, update, self.config, self.context, metrics)
        state = with_delta(self.start, state, update)
        content = RecordDict({"arrays": state_record(state), "metrics": MetricRecord(metrics)})
        return Message(content, reply_to=self.msg)


def secure_reply(
    msg: Message, update: torch.Tensor, config: ConfigRecord, context: Context, metrics: dict
) -> Message:
    """Secure aggregation's reply: the update's shares, sealed to an S2 key that the node's
    own CA certified; an error reply (one logged line) if the key is not certified.

    The plaintext update goes along only in a simulation with an omniscient attack, when the
    server asks (``secure-oracle``) AND the node itself allows it (``simulation-oracle``)."""
    try:
        s2_key = verified_key(offered_s2_key(config), secure_ca(context))
    except (KeyBindingError, KeyError) as exc:
        reason = f"S2's key is missing: {exc}" if isinstance(exc, KeyError) else str(exc)
        log.error("node %d: %s", context.node_id, reason)
        return Message(Error(ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason), reply_to=msg)
    clip, noise = float(config["secure-clip"]), float(config.get("secure-noise", 0.0))
    update = clip_and_noise(update, clip, noise, secret_generator())
    shares = shared_update(update, s2_key, str(config["secure-context"]), context.node_id)
    content = RecordDict({SECURE_RECORD: shares, "metrics": MetricRecord(metrics)})
    if config.get("secure-oracle", False) and sends_plaintext_oracle(context):
        content[ORACLE_RECORD] = ArrayRecord({"update": Array(update.numpy())})
    return Message(content, reply_to=msg)


def mime_train_handler(msg: Message, context: Context) -> Message:
    """Mime's or MimeLite's local steps with the server's optimizer state frozen.

    Without a control variate (MimeLite) the reply also carries ``grad f_i(x)``, computed
    before the local steps."""
    task = _MimeTask.of(msg, context)
    optimizer = create_base_optimizer(str(task.config["base-optimizer"]))
    state = {k: v.to(task.device) for k, v in from_record(msg.content[STATE_KEY]).items()}
    if not state:  # the server has no state yet: start from the initial one
        state = optimizer.init_state(parameters_to_vector(task.model.parameters()).detach())
    control = None
    if CONTROL_KEY in msg.content:
        control = from_record(msg.content[CONTROL_KEY])[CONTROL_KEY].to(task.device)
    content = RecordDict()
    with task.seeded_torch():
        if control is None:
            content[GRADIENT_KEY] = to_record({GRADIENT_KEY: task.full_batch_gradient()})
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
    content["arrays"] = ArrayRecord(task.model.state_dict())
    content["metrics"] = MetricRecord(metrics)
    return Message(content, reply_to=msg)


@app.query("gradient")
def gradient_handler(msg: Message, context: Context) -> Message:
    """Mime's gradient phase: ``grad f_i(x)`` over this client's data."""
    task = _MimeTask.of(msg, context)
    with task.seeded_torch():
        gradient = task.full_batch_gradient()
    metrics = MetricRecord({"num-examples": len(task.indices)})
    content = RecordDict({GRADIENT_KEY: to_record({GRADIENT_KEY: gradient}), "metrics": metrics})
    return Message(content, reply_to=msg)


@dataclass(frozen=True)
class _MimeTask:
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
    def of(cls, msg: Message, context: Context) -> _MimeTask:
        experiment = experiment_of(context)
        partition_id, _ = node_partition(context)
        config = msg.content["config"]
        model, device = load_global_model(experiment, msg.content["arrays"])
        data, indices = node_data(experiment, context, "train")
        server_round = int(config.get("server-round", 0))
        return cls(experiment, config, partition_id, server_round, model, device, data, indices)

    @contextlib.contextmanager
    def seeded_torch(self) -> Iterator[None]:
        """Torch's RNG (dropout) seeded from (seed, round, partition), restored after."""
        seed = client_rng(self.experiment.seed, self.server_round, self.partition_id, 2)
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
            max_batches=int(self.config.get("gradient-batches", 0)),
            batch_size=settings.batch_size,
            rng=client_rng(self.experiment.seed, self.server_round, self.partition_id, 1),
        )


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the global model on this client's share of the test split."""
    experiment = experiment_of(context)
    config = msg.content.get("config", {})
    model, device = load_global_model(experiment, msg.content["arrays"], config.get("model"))
    data, indices = node_data(experiment, context, "test")
    metrics = evaluate(model, data, data.test, indices, experiment.eval_batch_size, device)
    return Message(RecordDict({"metrics": MetricRecord(metrics)}), reply_to=msg)


@app.query()
def query_handler(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node holds (used to order nodes by seed)."""
    partition_id, num_partitions = node_partition(context)
    metrics = MetricRecord({"partition-id": partition_id, "num-partitions": num_partitions})
    return Message(RecordDict({"metrics": metrics}), reply_to=msg)


def experiment_of(context: Context) -> Experiment:
    return _experiment(tuple(sorted(context.run_config.items())))


@functools.lru_cache(maxsize=8)
def _experiment(items: tuple) -> Experiment:
    return Experiment.from_run_config(dict(items))


def node_attack(context: Context) -> str | None:
    """The node config's ``attack``: a deployment's red-team node (client attacks only)."""
    attack = context.node_config.get("attack")
    return str(attack) if attack else None


def node_partition(context: Context) -> tuple[int, int]:
    """This node's ``partition-id`` and ``num-partitions`` from its node config."""
    return int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])


def node_data(
    experiment: Experiment, context: Context, split: str
) -> tuple[FederatedDataset, np.ndarray]:
    """This node's data set and its samples of ``split`` (``"train"`` or ``"test"``): all of
    its own files when its node config names them (``data = "npz:/data/mine.npz"``, any data
    set spec, of the run's kind and shape), else its partition of the run's data set."""
    spec = context.node_config.get("data")
    if spec:
        data = load_dataset(str(spec), seed=experiment.seed)
        return data, np.arange(len(data.train if split == "train" else data.test))
    partition_id, num_partitions = node_partition(context)
    partitions = train_partitions if split == "train" else test_partitions
    return dataset_of(experiment), partitions(experiment, num_partitions)[partition_id]


def node_state_file(experiment: Experiment, partition_id: int) -> Path | None:
    """Where a simulated node mirrors its own state (``node-state-dir``), if anywhere."""
    if not experiment.node_state_dir:
        return None
    return Path(experiment.node_state_dir) / f"{partition_id}.pt"


def load_global_model(
    experiment: Experiment, arrays: ArrayRecord, name: str | None = None
) -> tuple[torch.nn.Module, torch.device]:
    """The process's one model object of architecture ``name`` (the message's ``"model"``;
    the run's ``model`` by default), loaded with ``arrays``."""
    device = resolve_device(experiment.device)
    model = _model(str(name or experiment.model), experiment.dataset, experiment.seed, str(device))
    with warnings.catch_warnings():  # the values are copied into the model at once
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        state = {key: torch.from_numpy(array_values(arrays[key])) for key in arrays}
    model.load_state_dict(state)
    return model, device


_models = threading.local()  # runs in threads of one process each load their own


def _model(name: str, dataset: str, seed: int, device: str) -> torch.nn.Module:
    """This thread's one model object of each architecture."""
    cache = _models.__dict__.setdefault("by_key", {})
    key = (name, dataset, seed, device)
    if key not in cache:
        if len(cache) >= 4:
            cache.pop(next(iter(cache)))  # the oldest
        data = load_dataset(dataset, seed=seed)
        cache[key] = create_model(name, data.input_shape, data.num_classes, seed).to(device)
    return cache[key]
