"""Stamen's Flower ClientApp (Message API): train, evaluate and query handlers.

Handlers only translate messages: they unpack ``"arrays"`` and ``"config"``, call the plain
functions of :mod:`stamen.clients.training`, and reply with ``"arrays"`` and a
``MetricRecord`` holding ``"num-examples"``, as Flower's own strategies expect. Settings a
message does not carry fall back to the run config, so flwr's built-in strategies work too.
The node's data comes from its node config (``partition-id``, ``num-partitions``).
"""

from __future__ import annotations

import functools

import torch
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from stamen.clients.byzantine import client_attack
from stamen.clients.local_data import client_rng, dataset_of, test_partitions, train_partitions
from stamen.clients.training import TrainSettings, evaluate, resolve_device, train
from stamen.clients.updates import flat_delta, with_delta
from stamen.clients.worker_momentum import apply_worker_momentum
from stamen.datasets import load_dataset
from stamen.models import create_model
from stamen.simulations.config import Experiment

app = ClientApp()


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Load the global model, train locally, and reply with the new model."""
    experiment = experiment_of(context)
    partition_id, num_partitions = node_partition(context)
    config = msg.content.get("config", {})
    model, device = load_global_model(experiment, msg.content["arrays"])
    server_round = int(config.get("server-round", 0))
    seed = int(client_rng(experiment.seed, server_round, partition_id).integers(2**62))
    data = dataset_of(experiment)
    attack = client_attack(experiment, partition_id)
    sends_update = attack is not None or experiment.worker_momentum > 0
    start = {k: v.clone() for k, v in model.state_dict().items()} if sends_update else {}
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        metrics = train(
            model,
            data,
            train_partitions(experiment, num_partitions)[partition_id],
            TrainSettings.from_config(config, experiment),
            client_rng(experiment.seed, server_round, partition_id),
            device,
            label_map=(lambda y: attack.poison_labels(y, data.num_classes)) if attack else None,
        )
    state = model.state_dict()
    if sends_update:
        update = flat_delta(start, state)
        if attack:  # Byzantine clients use no momentum
            update = attack.poison_update(update, torch.Generator().manual_seed(seed))
        else:
            update = apply_worker_momentum(context.state, update, experiment.worker_momentum)
        state = with_delta(start, state, update)
    content = RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)})
    return Message(content, reply_to=msg)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the global model on this client's share of the test split."""
    experiment = experiment_of(context)
    partition_id, num_partitions = node_partition(context)
    model, device = load_global_model(experiment, msg.content["arrays"])
    data = dataset_of(experiment)
    metrics = evaluate(
        model,
        data,
        data.test,
        test_partitions(experiment, num_partitions)[partition_id],
        experiment.eval_batch_size,
        device,
    )
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


def node_partition(context: Context) -> tuple[int, int]:
    """This node's ``partition-id`` and ``num-partitions`` from its node config."""
    return int(context.node_config["partition-id"]), int(context.node_config["num-partitions"])


def load_global_model(
    experiment: Experiment, arrays: ArrayRecord
) -> tuple[torch.nn.Module, torch.device]:
    """The process's one model object of this architecture, loaded with ``arrays``."""
    device = resolve_device(experiment.device)
    model = _model(experiment.model, experiment.dataset, experiment.seed, str(device))
    model.load_state_dict(arrays.to_torch_state_dict())
    return model, device


@functools.lru_cache(maxsize=4)
def _model(name: str, dataset: str, seed: int, device: str) -> torch.nn.Module:
    data = load_dataset(dataset, seed=seed)
    return create_model(name, data.input_shape, data.num_classes, seed).to(device)
