"""Pruning around a strategy: the pruned model travels sparse, the dense weights take the
step (all with feedback, the kept ones without), and one client with one step per round
is DPF's centralised algorithm (Lin et al., ICLR 2020)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import Strategy

from stamen.algorithms.pruning import cubic, magnitude_masks, parse_pruning
from stamen.clients.client_app import app as client_app
from stamen.clients.training import TrainSettings, minibatches
from stamen.datasets import load_dataset
from stamen.federation import train_partitions
from stamen.messages.pruned import pruned_record, unpruned
from stamen.messages.replies import Refused
from stamen.models import create_model
from stamen.seeding import client_rng
from stamen.simulations import server_app
from stamen.simulations.checkpoint import load_checkpoint
from stamen.simulations.inline_engine import InlineGrid, run_inline
from stamen.simulations.results import RunRecorder, read_metrics
from stamen.strategies.pruned_model import PrunedModel

INITIAL = ArrayRecord(
    {
        "w": Array(np.array([[1.0, -0.1], [0.2, 3.0]], np.float32)),
        "b": Array(np.array([0.5, 0.5], np.float32)),
    }
)


class Stepping(Strategy):
    """Sends the model to node 1 and returns it plus a fixed step."""

    def __init__(self, step: dict[str, np.ndarray]) -> None:
        self.step = step

    def configure_train(self, server_round, arrays, config, grid):
        self.arrays = arrays
        return [Message(RecordDict({"arrays": arrays, "config": ConfigRecord()}), 1, "train")]

    def aggregate_train(self, server_round, replies):
        new = {k: Array(self.arrays[k].numpy() + self.step[k]) for k in self.arrays}
        return ArrayRecord(new), MetricRecord()

    def configure_evaluate(self, *args):
        return []

    def aggregate_evaluate(self, *args):
        return None

    def summary(self):
        pass


STEP = {"w": np.full((2, 2), 0.25, np.float32), "b": np.full(2, 0.25, np.float32)}


@pytest.mark.parametrize(
    ("spec", "feedback"),
    [("dpf(sparsity=0.5, until=1)", True), ("gradual(sparsity=0.5, until=1)", False)],
)
def test_the_step_reaches_the_pruned_weights_only_with_feedback(spec, feedback):
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    wrapper = PrunedModel(Stepping(STEP), parse_pruning(spec), num_rounds=2)
    wrapper.configure_train(1, INITIAL, ConfigRecord(), None)
    first, _ = wrapper.aggregate_train(1, [])
    # after round 1 (of 2): sparsity 0.5 * (1 - 1/8) of 4 weights: 1 pruned, -0.1 + 0.25
    np.testing.assert_allclose(first["w"].numpy(), [[1.25, 0.0], [0.45, 3.25]])
    (message,) = wrapper.configure_train(2, first, ConfigRecord(), None)
    assert "arrays" not in message.content and "pruned" in message.content
    np.testing.assert_allclose(unpruned(message.content["pruned"])["w"].numpy(), first["w"].numpy())
    second, metrics = wrapper.aggregate_train(2, [])
    dense = wrapper.state.dense[:4].reshape(2, 2).numpy()
    # the pruned weight: 0.15 + 0.25 with feedback; zero without
    assert dense[0, 1] == pytest.approx(0.4 if feedback else 0.0)
    assert metrics["sparsity"] == pytest.approx(0.25)
    # final round: sparsity 0.5 -> two pruned, by the dense magnitudes
    assert (second["w"].numpy() == 0).sum() == 2
    np.testing.assert_allclose(second["b"].numpy(), [1.0, 1.0])  # biases are never pruned


def test_the_sparse_wire_form_round_trips_and_refuses_a_malformed_one():
    masks = {"w": np.array([[True, False], [False, True]])}
    record = pruned_record(INITIAL, masks)
    assert sorted(record) == ["b", "w/mask", "w/shape", "w/values"]
    assert record["w/values"].shape == (2,) and record["w/mask"].shape == (1,)
    np.testing.assert_array_equal(unpruned(record)["w"].numpy(), [[1.0, 0.0], [0.0, 3.0]])
    record["w/values"] = Array(np.ones(3, np.float32))
    with pytest.raises(Refused, match="3,\\) values for 2 kept"):
        unpruned(record)


@pytest.mark.parametrize(
    ("server", "local_steps", "method"),
    [
        ({"strategy": "fedavg", "lr": 0.1}, 1, "dpf"),
        # heavy-ball SGD: the client's step is the gradient, FedAvgM's momentum and lr
        ({"strategy": "fedavgm", "lr": 1.0, "server_lr": 0.1, "server_momentum": 0.9}, 1, "dpf"),
        # federated: the client's steps of a round all at the round's pruned model
        ({"strategy": "fedavg", "lr": 0.1}, 3, "dpf"),
        ({"strategy": "fedavg", "lr": 0.1}, 3, "gradual"),
    ],
    ids=["sgd", "momentum-sgd", "local-sgd", "local-sgd-no-feedback"],
)
def test_dpf_with_one_client_is_the_paper_s_algorithm(
    tiny_experiment, tmp_path, server, local_steps, method
):
    """Each round: the gradients at the pruned model m * w (the round's mask) update the
    dense w (through the server's momentum, if any), pruned weights included only with
    feedback; the mask is recomputed from w every 2 rounds on the cubic schedule until it
    reaches the target in round 4 (until=0.75 of 6, rounded down), then kept. One step a
    round is the paper's (central) algorithm."""
    experiment = tiny_experiment.replace(
        num_clients=1,
        min_available_clients=1,
        partition="iid",
        local_steps=local_steps,
        momentum=0.0,
        num_server_rounds=6,
        pruning=f"{method}(sparsity=0.8, every=2)",
        **server,
    )
    server_lr, server_momentum = server.get("server_lr", 1.0), server.get("server_momentum", 0.0)
    feedback = method == "dpf"
    run_inline(experiment, RunRecorder(tmp_path / "run", experiment))
    federated = torch.load(tmp_path / "run" / "model.pt")

    data = load_dataset("synthetic")
    model = create_model("mlp", data.input_shape, data.num_classes, experiment.seed)
    dense = {k: v.clone() for k, v in model.state_dict().items()}
    masks: dict[str, torch.Tensor] = {}
    velocity = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    indices = train_partitions(experiment, 1)[0]
    settings = TrainSettings(local_steps=local_steps, batch_size=experiment.batch_size)

    def at_mask(weights):
        return {k: v * masks[k] if k in masks else v for k, v in weights.items()}

    for server_round in range(1, 7):
        sent = at_mask(dense)
        local = {k: v.clone() for k, v in sent.items()}
        for batch in minibatches(indices, settings, client_rng(experiment.seed, server_round, 0)):
            model.load_state_dict(at_mask(local))
            model.zero_grad()
            x, y = data.to_tensors(data.train, batch)
            F.cross_entropy(model(x), y).backward()
            with torch.no_grad():
                for name, parameter in model.named_parameters():
                    grad = parameter.grad
                    if not feedback and name in masks:
                        grad = grad * masks[name]
                    local[name] -= server["lr"] * grad
        with torch.no_grad():
            for name in velocity:
                velocity[name] = server_momentum * velocity[name] - (local[name] - sent[name])
                dense[name] -= server_lr * velocity[name]
        if not feedback:
            dense = at_mask(dense)
        if server_round in (2, 4):
            masks = magnitude_masks(dense, cubic(0.8, server_round, 4), structured=False)
    for key, value in at_mask(dense).items():
        torch.testing.assert_close(federated[key], value, atol=1e-6, rtol=1e-5)
    weights = [v for v in federated.values() if v.dim() >= 2]
    zeros = sum(int((v == 0).sum()) for v in weights) / sum(v.numel() for v in weights)
    assert zeros == pytest.approx(0.8, abs=1e-3)


def test_a_pruned_run_sends_less_and_learns(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(
        num_server_rounds=6, eval_every=6, pruning="dpf(sparsity=0.9)"
    )
    run_inline(experiment, RunRecorder(tmp_path / "run", experiment))
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    down = metrics[metrics.metric == "bytes-down"].sort_values("round").value.to_numpy()
    assert down[-1] < 0.2 * down[0]  # 10% of the weights as float32 and a 1/32 mask
    accuracy = metrics[metrics.metric == "accuracy"].sort_values("round").value.to_numpy()
    assert accuracy[-1] > accuracy[0] + 0.1


class Stop(Exception):
    """The server stops during a round."""


def test_a_pruned_run_stopped_in_round_5_resumes_to_the_uninterrupted_result(
    tiny_experiment, tmp_path, monkeypatch
):
    """The schedule depends on the run's rounds, so the stop happens inside the 6-round run:
    its evaluation of round 5 fails, after round 4's checkpoint."""
    experiment = tiny_experiment.replace(
        num_server_rounds=6, pruning="dpf(sparsity=0.8, every=2)", uplink="ef | sign"
    )
    whole = experiment.replace(out_dir=str(tmp_path / "whole"))
    run_inline(whole, RunRecorder(tmp_path / "whole", whole))

    original = server_app.server_evaluation

    def stopping(*args):
        evaluate = original(*args)

        def evaluate_or_stop(server_round, arrays):
            if server_round == 5:
                raise Stop
            return evaluate(server_round, arrays)

        return evaluate_or_stop

    stopped = experiment.replace(out_dir=str(tmp_path / "stopped"))
    with monkeypatch.context() as patch:
        patch.setattr(server_app, "server_evaluation", stopping)
        with pytest.raises(Stop):
            run_inline(stopped, RunRecorder(tmp_path / "stopped", stopped))
    assert load_checkpoint(tmp_path / "stopped").round == 4
    resumed = stopped.replace(resume=True)
    run_inline(resumed, RunRecorder(tmp_path / "stopped", resumed))
    a, b = (torch.load(tmp_path / run / "model.pt") for run in ("whole", "stopped"))
    assert all(torch.equal(a[key], b[key]) for key in a)
    metrics = [read_metrics(tmp_path / run) for run in ("whole", "stopped")]
    pd.testing.assert_frame_equal(
        *(m.sort_values(["round", "scope", "metric"]).reset_index(drop=True) for m in metrics)
    )
