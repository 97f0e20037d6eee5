"""Two-phase PowerSGD: the server's update from sums of the clients' factors is PowerSGD's
rank-r step on the example-weighted mean update (exact when the mean has rank <= r)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

from stamen.algorithms.compression import Draws
from stamen.algorithms.compression.powersgd import PowerSGD
from stamen.clients.client_app import app as client_app
from stamen.messages.arrays import ArrayLayout, record_tensors, tensors_record
from stamen.simulations.inline_engine import InlineGrid, run_inline
from stamen.simulations.results import RunRecorder
from stamen.strategies.powersgd import PowerSGDState, PowerSGDStrategy

SHAPES = {"w": (12, 10), "b": (12,)}
ZERO = ArrayRecord({k: Array(np.zeros(s, np.float32)) for k, s in SHAPES.items()})


class AnsweringGrid:
    """Answers the second phase as the clients do: ``Q_i = M_i^T P``."""

    def __init__(self, updates: dict[int, dict[str, torch.Tensor]]) -> None:
        self.updates = updates
        self.asked: list[int] = []

    def send_and_receive(self, messages, timeout=None):
        replies = []
        for message in messages:
            node = message.metadata.dst_node_id
            self.asked.append(node)
            p = record_tensors(message.content["powersgd-factors"])["w"]
            q_i = self.updates[node]["w"].T @ p
            content = RecordDict({"powersgd-factors": tensors_record({"w/q": q_i})})
            replies.append(Message(content, reply_to=message))
        return replies


def first_reply(node, update, q, examples):
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    request = Message(RecordDict(), dst_node_id=node, message_type="train.powersgd")
    parts = {"w/p": update["w"] @ q, "b/values": update["b"]}
    metrics = MetricRecord({"num-examples": examples})
    content = RecordDict({"powersgd-factors": tensors_record(parts), "metrics": metrics})
    return Message(content, reply_to=request)


def aggregate(updates, examples, rank):
    strategy = PowerSGDStrategy(rank, seed=0)
    strategy.state = PowerSGDState(arrays=ZERO)
    q = strategy._warm_q(1, strategy_layout())
    strategy.q_sent, strategy.grid = q, AnsweringGrid(updates)
    replies = [first_reply(n, updates[n], q["w"], examples[n]) for n in updates]
    arrays, metrics = strategy.aggregate_train(1, replies)
    return arrays, metrics, q["w"], strategy


def strategy_layout():
    return ArrayLayout.of(ZERO)


def random_updates(seed, count=3):
    generator = torch.Generator().manual_seed(seed)
    return {
        node: {k: torch.randn(s, generator=generator) for k, s in SHAPES.items()}
        for node in range(2, 2 + count)
    }


def test_the_update_is_powersgd_of_the_weighted_mean():
    updates, examples = random_updates(0), {2: 10, 3: 30, 4: 60}
    arrays, metrics, q, strategy = aggregate(updates, examples, rank=2)
    weights = {n: e / 100 for n, e in examples.items()}
    mean = {k: sum(weights[n] * updates[n][k] for n in updates) for k in SHAPES}
    # PowerSGD's one-phase step on the mean, started from the same Q
    low_rank = PowerSGD(2)
    draws = Draws(torch.Generator(), torch.Generator())
    parts, _ = low_rank.compress(mean["w"], draws, {"q": q})
    expected = low_rank.decompress(parts, SHAPES["w"], draws)
    torch.testing.assert_close(torch.from_numpy(arrays["w"].numpy()), expected)
    torch.testing.assert_close(torch.from_numpy(arrays["b"].numpy()), mean["b"])
    assert strategy.grid.asked == [2, 3, 4] and metrics["excluded-second-phase"] == 0
    # the mean Q is next round's warm start
    torch.testing.assert_close(strategy.state.q["w"], parts["q"])


def test_a_mean_of_rank_at_most_r_is_sent_exactly():
    generator = torch.Generator().manual_seed(1)
    u, v = torch.randn(12, 2, generator=generator), torch.randn(10, 2, generator=generator)
    updates = {
        node: {"w": (node * u) @ v.T, "b": torch.full((12,), float(node))} for node in (2, 3)
    }
    arrays, _, _, _ = aggregate(updates, {2: 1, 3: 1}, rank=2)
    mean = (updates[2]["w"] + updates[3]["w"]) / 2
    torch.testing.assert_close(torch.from_numpy(arrays["w"].numpy()), mean, atol=1e-5, rtol=1e-5)


def test_malformed_first_phase_replies_are_excluded_before_the_second_phase():
    updates = random_updates(2)
    strategy = PowerSGDStrategy(2, seed=0)
    strategy.state = PowerSGDState(arrays=ZERO)
    q = strategy._warm_q(1, strategy_layout())
    strategy.q_sent, strategy.grid = q, AnsweringGrid(updates)
    good = [first_reply(n, updates[n], q["w"], 1) for n in (2, 3)]
    bad = first_reply(4, updates[4], q["w"], 1)
    factors = bad.content["powersgd-factors"]
    factors["w/p"] = Array(np.full((12, 2), np.nan, np.float32))
    _, metrics = strategy.aggregate_train(1, [*good, bad])
    assert metrics["excluded"] == 1 and strategy.grid.asked == [2, 3]


def test_a_two_phase_run_learns_with_factors_on_the_wire(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(num_server_rounds=4, eval_every=4)
    run_inline(experiment, RunRecorder(tmp_path / "fedavg", experiment))
    low_rank = experiment.replace(strategy="powersgd", powersgd_rank=2)
    run_inline(low_rank, RunRecorder(tmp_path / "powersgd", low_rank))
    dense, metrics = (pd.read_csv(tmp_path / r / "metrics.csv") for r in ("fedavg", "powersgd"))
    up = metrics[metrics.metric == "bytes-up"].value
    assert (up < 0.1 * dense[dense.metric == "bytes-up"].value.mean()).all()
    accuracy = metrics[metrics.metric == "accuracy"].sort_values("round").value.to_numpy()
    assert accuracy[-1] > accuracy[0] + 0.1
    assert (metrics[metrics.metric == "excluded-second-phase"].value == 0).all()
