"""The ClientApp's handlers, and the ServerApp with other ClientApps (standard, failing)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from stamen.clients import client_app as stamen_client
from stamen.datasets import load_dataset
from stamen.federation import train_partitions
from stamen.models import create_model
from stamen.simulations.inline_engine import InlineGrid
from stamen.simulations.results import RunRecorder
from stamen.simulations.server_app import run_experiment


def context_for(experiment, partition_id):
    return Context(
        run_id=1,
        node_id=partition_id + 2,
        node_config={"partition-id": partition_id, "num-partitions": experiment.num_clients},
        state=RecordDict(),
        run_config=experiment.to_run_config(),
    )


def train_message(experiment, grid):
    data = load_dataset(experiment.dataset, seed=experiment.seed)
    model = create_model(experiment.model, data.input_shape, data.num_classes, 0)
    content = RecordDict(
        {"arrays": ArrayRecord(model.state_dict()), "config": ConfigRecord({"server-round": 1})}
    )
    message = Message(content, dst_node_id=2, message_type="train")
    message.metadata.__dict__["_message_id"] = "m1"
    return message, model


def test_train_reply_carries_arrays_and_num_examples(tiny_experiment):
    grid = InlineGrid(stamen_client.app, tiny_experiment.to_run_config(), 4)  # sets task identity
    message, model = train_message(tiny_experiment, grid)
    sent = {k: v.clone() for k, v in model.state_dict().items()}
    reply = stamen_client.app(message, context_for(tiny_experiment, 0))
    metrics = reply.content["metrics"]
    assert metrics["num-examples"] == len(train_partitions(tiny_experiment, 4)[0])
    assert np.isfinite(metrics["train-loss"])
    trained = reply.content["arrays"].to_torch_state_dict()
    assert trained.keys() == sent.keys()
    assert any(not torch.equal(trained[k], sent[k]) for k in sent)
    # The message's arrays are not modified by local training.
    received = message.content["arrays"].to_torch_state_dict()
    assert all(torch.equal(received[k], sent[k]) for k in sent)


def test_train_settings_in_the_message_override_the_run_config(tiny_experiment):
    grid = InlineGrid(stamen_client.app, tiny_experiment.to_run_config(), 4)
    message, model = train_message(tiny_experiment, grid)
    message.content["config"]["lr"] = 0.0
    reply = stamen_client.app(message, context_for(tiny_experiment, 1))
    trained = reply.content["arrays"].to_torch_state_dict()
    assert all(torch.equal(trained[k], v) for k, v in model.state_dict().items())


def test_query_reports_the_partition(tiny_experiment):
    InlineGrid(stamen_client.app, tiny_experiment.to_run_config(), 4)
    message = Message(RecordDict(), dst_node_id=2, message_type="query")
    reply = stamen_client.app(message, context_for(tiny_experiment, 3))
    assert reply.content["metrics"]["partition-id"] == 3


standard_app = ClientApp()


@standard_app.train()
def standard_train(msg: Message, context: Context) -> Message:
    """A plain Flower ClientApp: no query handler, its own update rule (+0.01)."""
    arrays = msg.content["arrays"].to_torch_state_dict()
    updated = {k: v + 0.01 for k, v in arrays.items()}
    metrics = MetricRecord({"train_loss": 1.0, "num-examples": 10})
    return Message(RecordDict({"arrays": ArrayRecord(updated), "metrics": metrics}), reply_to=msg)


def test_server_app_runs_with_a_standard_flower_client_app(tiny_experiment, tmp_path):
    grid = InlineGrid(standard_app, tiny_experiment.to_run_config(), 4)
    recorder = RunRecorder(tmp_path / "run", tiny_experiment)
    summary = run_experiment(grid, tiny_experiment, recorder, "inline", ask_partitions=False)
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    replies = metrics[metrics.metric == "replies"].value
    assert list(replies) == [4.0, 4.0]
    # Every client added 0.01 to every weight: FedAvg of the replies does too.
    data = load_dataset("synthetic")
    start = create_model("mlp", data.input_shape, data.num_classes, tiny_experiment.seed)
    final = torch.load(tmp_path / "run" / "model.pt")
    for key, value in start.state_dict().items():
        assert torch.allclose(final[key], value + 0.02, atol=1e-6)
    assert summary["rounds"] == 2


failing_app = ClientApp()


@failing_app.train()
def failing_train(msg: Message, context: Context) -> Message:
    if context.node_config["partition-id"] == 0:
        raise RuntimeError("this client is broken")
    return stamen_client.train_handler(msg, context)


@failing_app.query()
def failing_query(msg: Message, context: Context) -> Message:
    return stamen_client.query_handler(msg, context)


def test_a_failing_client_is_excluded_and_the_run_finishes(tiny_experiment, tmp_path):
    grid = InlineGrid(failing_app, tiny_experiment.to_run_config(), 4)
    run_experiment(grid, tiny_experiment, RunRecorder(tmp_path / "run", tiny_experiment), "inline")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics[metrics.metric == "failures"].value) == [1.0, 1.0]
    assert list(metrics[metrics.metric == "replies"].value) == [3.0, 3.0]
    assert (tmp_path / "run" / "summary.json").exists()


broken_app = ClientApp()


@broken_app.train()
def broken_train(msg: Message, context: Context) -> Message:
    raise RuntimeError("every client is broken")


def test_rounds_without_any_valid_reply_keep_the_model_and_finish(tiny_experiment, tmp_path):
    grid = InlineGrid(broken_app, tiny_experiment.to_run_config(), 4)
    run_experiment(grid, tiny_experiment, RunRecorder(tmp_path / "run", tiny_experiment), "inline")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics[metrics.metric == "failures"].value) == [4.0, 4.0]
    data = load_dataset("synthetic")
    start = create_model("mlp", data.input_shape, data.num_classes, tiny_experiment.seed)
    final = torch.load(tmp_path / "run" / "model.pt")
    assert all(torch.equal(final[k], v) for k, v in start.state_dict().items())


def test_byzantine_clients_can_get_iid_data_while_honest_ones_are_sorted(tiny_experiment):
    from stamen.attacks import byzantine_clients

    experiment = tiny_experiment.replace(
        num_clients=10,
        partition="sorted",
        attack="sign-flip",
        num_byzantine=2,
        byzantine_data="iid",
    )
    parts = train_partitions(experiment, 10)
    labels = load_dataset("synthetic").train.y
    byzantine = set(byzantine_clients(10, 2, experiment.seed).tolist())
    classes = [len(np.unique(labels[p])) for p in parts]
    honest = [c for i, c in enumerate(classes) if i not in byzantine]
    assert all(classes[i] >= 8 for i in byzantine)  # iid: (nearly) every class
    assert sum(honest) / len(honest) < 4  # sorted: few classes each
    covered = np.concatenate([p for i, p in enumerate(parts) if i not in byzantine])
    assert len(np.unique(covered)) == len(labels)  # honest clients split the whole set
