"""Faulty clients are dropped from their round with a recorded reason; the run goes on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from stamen.clients import client_app as stamen_client
from stamen.simulations.inline_engine import InlineGrid
from stamen.simulations.ordered_grid import PartitionOrderedGrid
from stamen.simulations.reply_screen import NO_REPLY, refusal
from stamen.simulations.results import RunRecorder
from stamen.simulations.server_app import run_experiment


def record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(value) for key, value in arrays.items()})


@pytest.fixture
def sent():
    InlineGrid(stamen_client.app, {}, 1)  # Message construction needs a run context
    model = {"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}
    return Message(RecordDict({"arrays": record(model)}), dst_node_id=1, message_type="train")


def content_with(arrays: dict, examples=10) -> RecordDict:
    return RecordDict(
        {"arrays": record(arrays), "metrics": MetricRecord({"num-examples": examples})}
    )


GOOD = {"w": np.ones((3, 2), np.float32), "b": np.ones(2, np.float32)}
BAD_REPLIES = {
    "wrong shape": ({"w": np.ones((2, 3), np.float32), "b": GOOD["b"]}, 10, "shape"),
    "wrong dtype": ({"w": GOOD["w"].astype(np.float64), "b": GOOD["b"]}, 10, "shape"),
    "missing key": ({"w": GOOD["w"]}, 10, "keys"),
    "extra key": ({**GOOD, "x": GOOD["b"]}, 10, "keys"),
    "NaN": ({"w": np.full((3, 2), np.nan, np.float32), "b": GOOD["b"]}, 10, "NaN"),
    "Inf": ({"w": GOOD["w"], "b": np.array([np.inf, 0], np.float32)}, 10, "Inf"),
    "no examples": (GOOD, 0, "num-examples"),
    "oversized": ({**GOOD, "b": np.zeros(2**19, np.float32)}, 10, "MB"),
}


def test_a_well_formed_reply_passes(sent):
    assert refusal(sent, Message(content_with(GOOD), reply_to=sent)) is None


@pytest.mark.parametrize("name", list(BAD_REPLIES))
def test_each_malformed_reply_is_refused_with_its_reason(sent, name):
    arrays, examples, reason = BAD_REPLIES[name]
    found = refusal(sent, Message(content_with(arrays, examples), reply_to=sent))
    assert found is not None and reason in found


def test_replies_without_a_model_are_left_to_the_strategy(sent):
    shares = RecordDict({"shares": record({"s": np.zeros(4, np.uint8)})})
    assert refusal(sent, Message(shares, reply_to=sent)) is None


def test_a_model_sent_pruned_or_compressed_declares_the_size_replies_may_have():
    """A message carrying a small encoding of a large model (pruned, a compressed change)
    allows a reply of the model's size, which it declares in its config."""
    InlineGrid(stamen_client.app, {}, 1)
    large = {"w": np.zeros(2**19, np.float32)}  # 2 MiB
    sparse = record({"w/values": np.zeros(8, np.float32)})
    reply_content = RecordDict({"arrays": record(large)})
    for declared, refused in ((None, True), (2**21, False)):
        config = ConfigRecord({} if declared is None else {"model-bytes": declared})
        sent = Message(RecordDict({"pruned": sparse, "config": config}), 1, "train")
        found = refusal(sent, Message(reply_content, reply_to=sent))
        assert (found is not None and "MB" in found) == refused


faulty_app = ClientApp()


@faulty_app.train()
def faulty_train(msg: Message, context: Context) -> Message:
    """Partition 0 raises; partition 1 sends a NaN model; partition 2 an oversized one."""
    partition = context.node_config["partition-id"]
    if partition == 0:
        raise RuntimeError("this client is broken")
    reply = stamen_client.train_handler(msg, context)
    arrays = {k: v.numpy() for k, v in reply.content["arrays"].items()}
    if partition == 1:
        arrays = {k: np.full_like(v, np.nan) for k, v in arrays.items()}
    if partition == 2:
        arrays["padding"] = np.zeros(2**20, np.float32)
    reply.content["arrays"] = record(arrays)
    return reply


@faulty_app.query()
def faulty_query(msg: Message, context: Context) -> Message:
    return stamen_client.query_handler(msg, context)


class SilentNodeGrid(InlineGrid):
    """Partition 3 never answers training messages (a crashed or hung node)."""

    def send_and_receive(self, messages, *, timeout=None):
        replies = super().send_and_receive(messages, timeout=timeout)
        silent = self.get_node_ids()[3]
        return [
            r
            for r in replies
            if r.metadata.src_node_id != silent or r.metadata.message_type == "query"
        ]


@pytest.mark.parametrize("strategy", ["fedavg", "robust"])
def test_faulty_and_silent_clients_are_dropped_and_recorded(tiny_experiment, tmp_path, strategy):
    experiment = tiny_experiment.replace(num_clients=6, min_available_clients=6, strategy=strategy)
    grid = SilentNodeGrid(faulty_app, experiment.to_run_config(), 6)
    run_experiment(grid, experiment, RunRecorder(tmp_path / "run", experiment), "inline")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics[metrics.metric == "replies"].value) == [2.0, 2.0]
    assert list(metrics[metrics.metric == "failures"].value) == [4.0, 4.0]
    dropped = pd.read_csv(tmp_path / "run" / "dropped.csv")
    assert list(dropped["round"]) == [1] * 4 + [2] * 4
    reasons = dict(zip(dropped["partition-id"], dropped.reason, strict=False))
    assert "this client is broken" in reasons[0] and "NaN" in reasons[1]
    assert "MB" in reasons[2] and reasons[3] == NO_REPLY
    final = torch.load(tmp_path / "run" / "model.pt")
    assert all(torch.isfinite(v).all() for v in final.values())


def test_a_round_with_fewer_than_min_replies_keeps_the_model(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(num_clients=6, min_available_clients=6, min_replies=3)
    grid = SilentNodeGrid(faulty_app, experiment.to_run_config(), 6)
    run_experiment(grid, experiment, RunRecorder(tmp_path / "run", experiment), "inline")
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert list(metrics[metrics.metric == "skipped"].value) == [1.0, 1.0]
    server = metrics[(metrics.scope == "server") & (metrics.metric == "accuracy")]
    assert server.value.nunique() == 1  # rounds 0, 1, 2: the initial model throughout


def test_the_grid_reports_dropped_nodes_once(tiny_experiment):
    grid = PartitionOrderedGrid(SilentNodeGrid(faulty_app, tiny_experiment.to_run_config(), 4))
    nodes = grid.get_node_ids()
    messages = [
        Message(RecordDict({"arrays": record(GOOD)}), dst_node_id=n, message_type="train")
        for n in nodes
    ]
    grid.send_and_receive(messages, timeout=1)
    first = grid.take_dropped()
    assert len(first) == 4 and grid.take_dropped() == []
