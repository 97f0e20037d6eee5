"""The compressed downlink: the server sends the change of its model, compressed, to nodes
that hold the previous round's model, and the model itself to any other; the nodes rebuild
exactly the model the server holds for them; with ``ef`` the server's memory is its model
minus what the nodes hold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import Strategy

from stamen.algorithms.compression import parse_compression
from stamen.clients.client_app import app as client_app
from stamen.clients.received_model import received_model
from stamen.errors import StamenError
from stamen.simulations.checkpoint import load_checkpoint
from stamen.simulations.inline_engine import InlineGrid, run_inline
from stamen.simulations.results import RunRecorder
from stamen.strategies.compressed_traffic import CompressedTraffic


class Broadcast(Strategy):
    """Sends ``arrays`` to the nodes it is told, returns the replies' first model."""

    def __init__(self) -> None:
        self.nodes: list[int] = []

    def configure_train(self, server_round, arrays, config, grid):
        config = ConfigRecord({"server-round": server_round})
        return [
            Message(RecordDict({"arrays": arrays, "config": config}), node, "train")
            for node in self.nodes
        ]

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        return (replies[0].content["arrays"] if replies else None), MetricRecord()

    def configure_evaluate(self, *args):
        return []

    def aggregate_evaluate(self, *args):
        return None

    def summary(self):
        pass


def model(round_: int) -> ArrayRecord:
    rng = np.random.default_rng(round_)
    return ArrayRecord(
        {
            "w": Array(rng.normal(size=(8, 5)).astype(np.float32) * round_),
            "count": Array(np.array(round_, dtype=np.int64)),
        }
    )


def node_context(experiment) -> Context:
    return Context(1, 1, {}, RecordDict(), experiment.to_run_config())


def reply_to(message: Message) -> Message:
    metrics = MetricRecord({"num-examples": 1})
    return Message(RecordDict({"arrays": model(0), "metrics": metrics}), reply_to=message)


def test_nodes_rebuild_the_model_the_server_holds_for_them(tiny_experiment):
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    experiment = tiny_experiment.replace(downlink="ef | top-k(ratio=0.2)")
    inner = Broadcast()
    server = CompressedTraffic(inner, None, experiment.seed, experiment_downlink(experiment))
    nodes = {node: node_context(experiment) for node in (1, 2, 3)}
    schedule = {1: [1, 2], 2: [1, 2], 3: [2, 3], 4: [1, 2, 3]}
    for server_round, sampled in schedule.items():
        inner.nodes = sampled
        arrays = model(server_round)
        messages = {
            m.metadata.dst_node_id: m
            for m in server.configure_train(server_round, arrays, ConfigRecord(), None)
        }
        changes = {n for n, m in messages.items() if "downlink" in m.content.array_records}
        # a node gets the change only when it replied to the previous round's message
        expected = {1: set(), 2: {1, 2}, 3: {2}, 4: {2, 3}}[server_round]
        assert changes == expected
        for node, message in messages.items():
            rebuilt = received_model(message, nodes[node], experiment)
            for key in ("w", "count"):
                np.testing.assert_array_equal(rebuilt[key].numpy(), server.held[key].numpy())
        server.aggregate_train(server_round, [reply_to(m) for m in messages.values()])
        # error feedback: what the nodes hold plus the server's memory is its model
        if server_round > 1:
            memory = server.state.compressor["memory"].numpy().reshape(8, 5)
            held = server.held["w"].numpy()
            np.testing.assert_allclose(held + memory, arrays["w"].numpy(), atol=1e-5)


def experiment_downlink(experiment):
    return parse_compression(experiment.downlink)


def test_a_change_from_a_round_the_node_does_not_hold_fails_the_message(tiny_experiment):
    InlineGrid(client_app, {}, 1)
    experiment = tiny_experiment.replace(downlink="top-k(ratio=0.5)")
    inner = Broadcast()
    server = CompressedTraffic(inner, None, experiment.seed, experiment_downlink(experiment))
    inner.nodes = [1]
    first = server.configure_train(1, model(1), ConfigRecord(), None)
    server.aggregate_train(1, [reply_to(m) for m in first])
    (second,) = server.configure_train(2, model(2), ConfigRecord(), None)
    with pytest.raises(StamenError, match="starts from round 1's model, this node holds None"):
        received_model(second, node_context(experiment), experiment)  # a node that lost it


def run(experiment, out):
    run_inline(experiment, RunRecorder(out, experiment))
    metrics = pd.read_csv(out / "metrics.csv")
    return torch.load(out / "model.pt"), metrics


def test_a_compressed_downlink_run_learns_with_fewer_bytes_down(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(num_server_rounds=4, eval_every=4)
    _, dense = run(experiment, tmp_path / "dense")
    _, sparse = run(experiment.replace(downlink="ef | top-k(ratio=0.05)"), tmp_path / "sparse")
    down = sparse[sparse.metric == "bytes-down"].sort_values("round").value.to_numpy()
    dense_down = dense[dense.metric == "bytes-down"].value.to_numpy()
    assert down[0] == dense_down[0] and (down[1:] < 0.15 * dense_down[1:]).all()
    accuracy = sparse[sparse.metric == "accuracy"].sort_values("round").value.to_numpy()
    assert accuracy[-1] > accuracy[0] + 0.1


def test_a_resumed_downlink_run_ends_as_the_uninterrupted_one(tiny_experiment, tmp_path):
    """Same model and metrics; only the first round after the resume sends whole models
    (the server does not know what the nodes hold)."""
    experiment = tiny_experiment.replace(
        num_server_rounds=4, downlink="ef | random-block(ratio=0.2)", uplink="ef | sign"
    )
    whole, whole_metrics = run(experiment.replace(out_dir=str(tmp_path / "a")), tmp_path / "a")
    stopped = experiment.replace(out_dir=str(tmp_path / "b"), num_server_rounds=2)
    run(stopped, tmp_path / "b")
    assert "CompressedTraffic" in load_checkpoint(tmp_path / "b").wrapper_states
    resumed = experiment.replace(out_dir=str(tmp_path / "b"), resume=True)
    again, metrics = run(resumed, tmp_path / "b")
    assert all(torch.equal(whole[key], again[key]) for key in whole)
    first_after = (metrics["round"] == 3) & (metrics.metric == "bytes-down")
    same = ~first_after
    pd.testing.assert_frame_equal(
        metrics[same].reset_index(drop=True), whole_metrics[same].reset_index(drop=True)
    )
    assert metrics[first_after].value.item() > whole_metrics[first_after].value.item()


def test_a_malformed_model_reply_to_a_compressed_change_is_excluded(tiny_experiment):
    InlineGrid(client_app, {}, 1)
    experiment = tiny_experiment.replace(downlink="top-k(ratio=0.5)")
    inner = Broadcast()
    server = CompressedTraffic(inner, None, experiment.seed, experiment_downlink(experiment))
    inner.nodes = [1, 2]
    first = server.configure_train(1, model(1), ConfigRecord(), None)
    server.aggregate_train(1, [reply_to(m) for m in first])
    second = server.configure_train(2, model(2), ConfigRecord(), None)
    bad = reply_to(second[0])
    bad.content["arrays"]["w"] = Array(np.full((8, 5), np.nan, np.float32))
    _, metrics = server.aggregate_train(2, [bad, reply_to(second[1])])
    assert metrics["excluded-compressed"] == 1
