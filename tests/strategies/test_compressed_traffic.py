"""The server's side of uplink compression: compressed replies become models before the
strategy; crafted payloads are excluded and counted; uncompressed replies pass unchanged."""

from __future__ import annotations

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

from stamen.algorithms.aggregation import parse_pipeline
from stamen.algorithms.compression import parse_compression
from stamen.clients.client_app import app as client_app
from stamen.clients.compressed_update import compress_update
from stamen.clients.round_memory import RoundMemory
from stamen.messages.arrays import array_of
from stamen.simulations.inline_engine import InlineGrid
from stamen.strategies.compressed_traffic import CompressedTraffic
from stamen.strategies.robust import RobustStrategy
from stamen.strategies.server_step import RobustState

GLOBAL = ArrayRecord(
    {"w": Array(np.zeros((2, 2), np.float32)), "count": Array(np.array(3, dtype=np.int64))}
)
TOP_HALF = parse_compression("top-k(ratio=0.5)")


def reply(node_id: int, record: ArrayRecord, name: str = "compressed") -> Message:
    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    request = Message(RecordDict(), dst_node_id=node_id, message_type="train")
    metrics = MetricRecord({"num-examples": 10, "train-loss": 1.0})
    return Message(RecordDict({name: record, "metrics": metrics}), reply_to=request)


def compressed(w, count=5) -> ArrayRecord:
    """What a client's reply carries for the update ``w`` (the global model is zero)."""
    trained = {"w": torch.tensor(w, dtype=torch.float32), "count": torch.tensor(count)}
    update = trained["w"].reshape(-1)
    memory = RoundMemory(RecordDict(), "uplink-memory")
    return compress_update(TOP_HALF, update, trained, memory, 0, 1, 0)


def server(nodes=(2, 3, 4, 5, 6, 7, 8, 9)) -> CompressedTraffic:
    robust = RobustStrategy(parse_pipeline("mean", 3, 0), seed=0)
    robust.state = RobustState(arrays=GLOBAL)
    wrapper = CompressedTraffic(robust, TOP_HALF, seed=0)
    wrapper.sent = {node: GLOBAL for node in nodes}  # what configure_train records
    return wrapper


def test_a_compressed_reply_becomes_the_model_sent_plus_its_decompressed_update():
    record = compressed([[1.0, -4.0], [2.0, 3.0]])
    assert sorted(record) == ["count", "w/indices", "w/values"]
    assert record["w/indices"].dtype == "uint8" and record["w/values"].shape == (2,)
    arrays, metrics = server().aggregate_train(1, [reply(2, record)])
    np.testing.assert_array_equal(arrays["w"].numpy(), [[0, -4], [0, 3]])  # the top 2 of 4
    assert arrays["count"].numpy() == 5
    assert "excluded-compressed" not in metrics


def with_array(record: ArrayRecord, key: str, values) -> ArrayRecord:
    crafted = ArrayRecord(dict(record.items()))
    crafted[key] = array_of(np.asarray(values))
    return crafted


def without(record: ArrayRecord, key: str) -> ArrayRecord:
    return ArrayRecord({k: v for k, v in record.items() if k != key})


def test_crafted_payloads_are_excluded_and_counted_and_the_honest_one_kept():
    honest = compressed([[1.0, -4.0], [2.0, 3.0]])
    crafted = [
        with_array(honest, "w/indices", np.array([0, 1], np.int64)),  # not the smallest type
        with_array(honest, "w/indices", np.array([0, 9], np.uint8)),  # out of range
        with_array(honest, "w/values", np.array([np.nan, 1], np.float32)),
        with_array(honest, "w/values", np.array([1, 2, 3], np.float32)),  # more values
        with_array(honest, "w/extra", np.array([1], np.float32)),  # a part it does not send
        without(honest, "count"),  # the integer array is missing
        with_array(honest, "count", np.array([1, 2])),  # of another shape
    ]
    replies = [reply(2, honest)] + [reply(3 + i, c) for i, c in enumerate(crafted)]
    replies.append(reply(11, honest))  # a node that was sent nothing this round
    arrays, metrics = server().aggregate_train(1, replies)
    assert metrics["excluded-compressed"] == len(crafted) + 1
    np.testing.assert_array_equal(arrays["w"].numpy(), [[0, -4], [0, 3]])


def test_a_reply_with_a_model_passes_unchanged():
    model = ArrayRecord(
        {"w": Array(np.ones((2, 2), np.float32)), "count": Array(np.array(3, dtype=np.int64))}
    )
    arrays, _ = server().aggregate_train(1, [reply(2, model, name="arrays")])
    np.testing.assert_array_equal(arrays["w"].numpy(), np.ones((2, 2)))
