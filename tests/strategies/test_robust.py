"""The generic robust strategy: validation, flattening, pipeline, server step, simulated attacks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

from stamen.algorithms.aggregation import parse_pipeline
from stamen.algorithms.compression import RoundDraws, parse_compression
from stamen.attacks import ALIE, IPM, Mimic
from stamen.clients.client_app import app as client_app
from stamen.errors import RoundSkipped
from stamen.messages.arrays import ArrayLayout
from stamen.messages.replies import stack_updates
from stamen.simulations.inline_engine import InlineGrid, run_inline
from stamen.simulations.results import RunRecorder
from stamen.strategies.robust import RobustStrategy
from stamen.strategies.server_step import RobustState
from stamen.strategies.simulated_attack import SimulatedAttack

GLOBAL = ArrayRecord(
    {"w": Array(np.zeros((2, 2), np.float32)), "count": Array(np.array(3, dtype=np.int64))}
)


def reply(node_id: int, w, count=3, examples=10, metrics=True) -> Message:
    """A train reply from ``node_id`` carrying weights ``w``."""
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    request = Message(RecordDict(), dst_node_id=node_id, message_type="train")
    content = {
        "arrays": ArrayRecord(
            {"w": Array(np.asarray(w, np.float32)), "count": Array(np.array(count, dtype=np.int64))}
        )
    }
    if metrics:
        content["metrics"] = MetricRecord({"num-examples": examples, "train-loss": 1.0})
    return Message(RecordDict(content), reply_to=request)


def strategy(text="mean", **kwargs) -> RobustStrategy:
    robust = RobustStrategy(parse_pipeline(text, 3, kwargs.pop("f", 0)), seed=0, **kwargs)
    robust.state = RobustState(arrays=GLOBAL)
    return robust


def weights(arrays: ArrayRecord) -> np.ndarray:
    return arrays["w"].numpy()


def test_layout_packs_floats_only_and_takes_integer_buffers_from_a_model():
    layout = ArrayLayout.of(GLOBAL)
    assert layout.size == 4 and layout.integer_keys == ("count",)
    vector = layout.flatten(GLOBAL) + torch.tensor([1.0, 2.0, 3.0, 4.0])
    back = layout.unflatten(vector, GLOBAL)
    assert list(back) == ["w", "count"]
    np.testing.assert_array_equal(weights(back), [[1, 2], [3, 4]])
    assert back["count"].numpy().shape == () and back["count"].numpy().dtype == np.int64
    assert back["count"].numpy() == 3
    with pytest.raises(ValueError, match="count is an integer array"):
        layout.unflatten(vector)


def test_integer_buffers_are_the_median_of_the_replies():
    robust = strategy()
    counts = [5, 7, 10**9]  # a Byzantine counter does not move the median
    replies = [reply(n, [[1, 0], [0, 0]], count=c) for n, c in zip((2, 3, 4), counts)]
    arrays, _ = robust.aggregate_train(1, replies)
    assert arrays["count"].numpy() == 7 and arrays["count"].numpy().dtype == np.int64
    np.testing.assert_allclose(weights(arrays), [[1, 0], [0, 0]])


def test_malformed_replies_are_excluded_and_counted():
    replies = [
        reply(2, [[1, 1], [1, 1]]),
        reply(3, [[np.nan, 0], [0, 0]]),  # NaN
        reply(4, [[1, 1, 1]]),  # wrong shape
        reply(5, [[1, 1], [1, 1]], metrics=False),  # no num-examples
        reply(6, [[1, 1], [1, 1]], examples=0),
    ]
    layout = ArrayLayout.of(GLOBAL)
    stacked = stack_updates(replies, layout.flatten(GLOBAL), layout)
    assert stacked.node_ids == (2,) and stacked.excluded == 4
    np.testing.assert_array_equal(stacked.updates.numpy(), [[1, 1, 1, 1]])


def test_mean_pipeline_is_the_unweighted_average_of_the_models():
    robust = strategy()
    replies = [reply(2, [[1, 0], [0, 0]], examples=1), reply(3, [[0, 3], [0, 0]], examples=100)]
    arrays, metrics = robust.aggregate_train(1, replies + [reply(4, [[np.inf, 0], [0, 0]])])
    np.testing.assert_allclose(weights(arrays), [[0.5, 1.5], [0, 0]])
    assert metrics["excluded"] == 1
    assert robust.state.arrays is arrays  # the state advances with the model


def test_server_lr_and_momentum():
    robust = strategy(server_lr=0.5, server_momentum=0.9)
    step = [reply(2, [[2, 0], [0, 0]])]
    robust.aggregate_train(1, step)  # v = 2 -> x = 0 + 0.5 * 2 = 1
    assert weights(robust.state.arrays)[0, 0] == pytest.approx(1.0)
    # Round 2: the update is 2 - 1 = 1 relative to x = 1; v = 0.9 * 2 + 1 = 2.8; x = 1 + 1.4
    arrays, _ = robust.aggregate_train(2, step)
    assert weights(arrays)[0, 0] == pytest.approx(2.4)


def test_simulated_attack_replaces_only_the_byzantine_updates():
    partition = {2: 0, 3: 1, 4: 2}
    attack = SimulatedAttack(IPM(epsilon=2.0), frozenset({2}), partition.get)
    robust = strategy(simulated_attack=attack, f=1)
    replies = [
        reply(2, [[100, 100], [100, 100]]),
        reply(3, [[1, 0], [0, 0]]),
        reply(4, [[3, 0], [0, 0]]),
    ]
    arrays, _ = robust.aggregate_train(1, replies)
    # Honest mean 2 -> IPM sends -2 * 2 = -4; the mean of (-4, 1, 3) is 0.
    np.testing.assert_allclose(weights(arrays), [[0, 0], [0, 0]], atol=1e-6)


def test_with_a_compressed_uplink_the_crafted_update_is_what_its_payload_delivers():
    """A Byzantine client is bound to the wire format: IPM's row passes through top-k."""
    partition = {2: 0, 3: 1, 4: 2}
    top_1 = parse_compression("top-k(ratio=0.25)")  # 1 of the 4 weights
    attack = SimulatedAttack(IPM(epsilon=2.0), frozenset({0}), partition.get, 0, lambda r: top_1)
    robust = strategy(simulated_attack=attack, f=1)
    replies = [
        reply(2, [[100, 100], [100, 100]]),
        reply(3, [[1, 0], [0, 0]]),
        reply(4, [[3, 2], [0, 0]]),
    ]
    arrays, _ = robust.aggregate_train(1, replies)
    # Honest mean (2, 1, 0, 0) -> IPM crafts (-4, -2, 0, 0), top-k delivers (-4, 0, 0, 0);
    # undelivered, the mean would be 0.
    np.testing.assert_allclose(weights(arrays), [[0, 2 / 3], [0, 0]], atol=1e-6)


def test_the_crafted_update_of_a_random_sparsifier_uses_the_rounds_shared_coordinates():
    """Random-block keeps the same block for the attacker as for the honest clients."""
    partition = {2: 0, 3: 1, 4: 2}
    block = parse_compression("random-block(ratio=0.5)")
    attack = SimulatedAttack(IPM(epsilon=1.0), frozenset({0}), partition.get, 7, lambda r: block)
    robust = strategy(simulated_attack=attack, f=1)
    honest = torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0]])
    draws = RoundDraws(7, 3)
    sent = [
        block.decompress(block.compress(u, [("w", (2, 2))], draws, {})[0], [("w", (2, 2))], draws)
        for u in honest
    ]
    replies = [reply(2, [[9, 9], [9, 9]])] + [
        reply(node, row.reshape(2, 2).numpy()) for node, row in zip((3, 4), sent)
    ]
    layout = ArrayLayout.of(GLOBAL)
    stacked = stack_updates(replies, layout.flatten(GLOBAL), layout)
    crafted, _ = robust._attack(3, stacked.updates.clone(), stacked.node_ids, layout)
    support = sent[0] != 0
    assert int(support.sum()) == 2
    torch.testing.assert_close(crafted[0], -(sent[0] + sent[1]) / 2)
    assert bool((crafted[0][~support] == 0).all())


def test_mimic_copies_its_target_client_whichever_row_it_arrives_in():
    """A client not sampled and the rest arriving in another order move clients to other
    rows: the attacker (partition 5) still copies the client chosen in round 1."""
    partition = {node: node - 10 for node in range(10, 16)}  # nodes 10..15 hold 0..5
    attack = SimulatedAttack(Mimic(), frozenset({5}), partition.get)
    robust = strategy(simulated_attack=attack)
    first = [reply(n, [[n, -n], [n % 3, 1]]) for n in range(10, 15)] + [reply(15, [[0, 0], [0, 0]])]
    robust.aggregate_train(1, first)
    target = robust.state.attack_state.target
    absent = next(n for n in range(10, 15) if partition[n] != target)
    present = [n for n in range(14, 9, -1) if n != absent]  # reversed: every row moves
    replies = [reply(n, [[n + 1.0, 0], [0, n]]) for n in present] + [reply(15, [[0, 0], [0, 0]])]
    layout = ArrayLayout.of(GLOBAL)
    stacked = stack_updates(replies, layout.flatten(robust.state.arrays), layout)
    crafted, state = robust._attack(2, stacked.updates.clone(), stacked.node_ids, layout)
    assert state.target == target
    row_of = {node: row for row, node in enumerate(stacked.node_ids)}
    torch.testing.assert_close(crafted[row_of[15]], stacked.updates[row_of[target + 10]])


def test_a_round_with_too_few_replies_for_krum_is_skipped_and_keeps_the_model():
    robust = strategy("krum", f=0)  # Krum with f = 0 needs n > 2
    with pytest.raises(RoundSkipped, match="2 replies are too few: krum"):
        robust.aggregate_train(1, [reply(2, [[1, 0], [0, 0]]), reply(3, [[0, 1], [0, 0]])])
    assert robust.state.arrays is GLOBAL


def test_a_round_the_simulated_attack_cannot_craft_is_skipped():
    """ALIE needs two honest updates for their spread: after drops only one is left."""
    attack = SimulatedAttack(ALIE(), frozenset({1}), {2: 0, 3: 1}.get)
    robust = strategy(simulated_attack=attack)
    with pytest.raises(RoundSkipped, match="at least 2 honest updates"):
        robust.aggregate_train(1, [reply(2, [[1, 0], [0, 0]]), reply(3, [[0, 1], [0, 0]])])
    assert robust.state.arrays is GLOBAL


def test_no_valid_reply_keeps_the_model():
    robust = strategy()
    arrays, metrics = robust.aggregate_train(1, [reply(2, [[np.nan, 0], [0, 0]])])
    assert arrays is None and metrics["excluded"] == 1
    assert robust.state.arrays is GLOBAL


def final_accuracy(experiment, out) -> float:
    run_inline(experiment, RunRecorder(out, experiment))
    metrics = pd.read_csv(out / "metrics.csv")
    server = metrics[(metrics.scope == "server") & (metrics.metric == "accuracy")]
    return float(server.value.iloc[-1])


def test_robust_rule_resists_a_client_side_attack_that_breaks_the_mean(tiny_experiment, tmp_path):
    attacked = tiny_experiment.replace(
        strategy="robust",
        num_clients=8,
        min_available_clients=8,
        num_server_rounds=4,
        attack="scaled(factor=-50)",
        num_byzantine=2,
    )
    clean = final_accuracy(
        tiny_experiment.replace(
            num_clients=8, min_available_clients=8, num_server_rounds=4, strategy="robust"
        ),
        tmp_path / "clean",
    )
    broken = final_accuracy(attacked, tmp_path / "mean")
    robust = final_accuracy(attacked.replace(aggregator="median"), tmp_path / "median")
    assert broken < clean - 0.2
    assert robust > clean - 0.1
