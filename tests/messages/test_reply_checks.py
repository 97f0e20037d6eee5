"""One set of reply checks: the grid's screen and the strategies refuse the same replies."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

from stamen.clients.client_app import app
from stamen.messages.arrays import ArrayLayout
from stamen.messages.replies import Refused, examples_of, stack_updates, vector_of
from stamen.simulations.inline_engine import InlineGrid
from stamen.simulations.reply_screen import refusal

MODEL = {"w": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)}
GOOD = {"w": np.ones((3, 2), np.float32), "b": np.ones(2, np.float32)}
BAD_MODELS = {
    "wrong shape": {"w": np.ones((2, 3), np.float32), "b": GOOD["b"]},
    "wrong dtype": {"w": GOOD["w"].astype(np.float64), "b": GOOD["b"]},
    "missing key": {"w": GOOD["w"]},
    "extra key": {**GOOD, "x": GOOD["b"]},
    "NaN": {"w": np.full((3, 2), np.nan, np.float32), "b": GOOD["b"]},
    "Inf": {"w": GOOD["w"], "b": np.array([np.inf, 0], np.float32)},
}
BAD_EXAMPLES = {
    "none": (),
    "zero": (0,),
    "negative": (-3,),
    "NaN": (math.nan,),
    "Inf": (math.inf,),
    "two MetricRecords": (10, 10),
}


def record(arrays: dict[str, np.ndarray]) -> ArrayRecord:
    return ArrayRecord({key: Array(value) for key, value in arrays.items()})


@pytest.fixture
def sent() -> Message:
    InlineGrid(app, {}, 1)  # sets the task identity Messages need
    return Message(RecordDict({"arrays": record(MODEL)}), dst_node_id=1, message_type="train")


def reply(sent: Message, arrays: dict, examples: tuple = (10,)) -> Message:
    content = RecordDict({"arrays": record(arrays)})
    for i, count in enumerate(examples):
        content[f"metrics{i or ''}"] = MetricRecord({"num-examples": count})
    return Message(content, reply_to=sent)


def kept(sent: Message, reply: Message) -> tuple[bool, bool]:
    """Whether the grid's screen and the strategies' ``stack_updates`` keep ``reply``."""
    model = sent.content["arrays"]
    layout = ArrayLayout.of(model)
    stacked = stack_updates([reply], layout.flatten(model), layout)
    return refusal(sent, reply) is None, stacked.excluded == 0


def test_a_well_formed_reply_is_kept_by_both(sent):
    assert kept(sent, reply(sent, GOOD)) == (True, True)


@pytest.mark.parametrize("name", list(BAD_MODELS))
def test_a_malformed_model_is_refused_by_both(sent, name):
    assert kept(sent, reply(sent, BAD_MODELS[name])) == (False, False)


@pytest.mark.parametrize("name", list(BAD_EXAMPLES))
def test_num_examples_must_be_positive_and_finite_in_one_metric_record(sent, name):
    bad = reply(sent, GOOD, BAD_EXAMPLES[name])
    assert kept(sent, bad) == (False, False)
    with pytest.raises(Refused, match="num-examples"):
        examples_of(bad)


def test_vectors_have_their_size_and_finite_values():
    arrays = ArrayRecord(
        {
            "g": Array(np.array([1.0, 2.0], np.float32)),
            "nan": Array(np.array([np.nan, 0.0], np.float32)),
            "matrix": Array(np.ones((1, 2), np.float32)),
        }
    )
    assert torch.equal(vector_of(arrays, "g", 2), torch.tensor([1.0, 2.0]))
    assert vector_of(arrays, "g", None).numel() == 2  # any size
    for key, size, reason in [
        ("g", 3, "shape"),
        ("matrix", 2, "shape"),
        ("nan", 2, "NaN"),
        ("missing", 2, "no array"),
    ]:
        with pytest.raises(Refused, match=reason):
            vector_of(arrays, key, size)


@pytest.mark.parametrize("crafted", ["fewer bytes", "other dtype"])
def test_an_array_whose_bytes_differ_from_what_it_declares_is_excluded(sent, crafted):
    """A crafted reply: the Array's declared shape and dtype are the model's, its bytes are
    not. It is excluded from the round instead of failing inside the flattening."""
    values = np.ones(3, np.float32) if crafted == "fewer bytes" else np.ones((3, 2), np.int32)
    honest = Array(GOOD["w"])
    forged = Array(
        dtype=honest.dtype, shape=honest.shape, stype=honest.stype, data=Array(values).data
    )
    content = RecordDict({"arrays": ArrayRecord({"w": forged, "b": Array(GOOD["b"])})})
    content["metrics"] = MetricRecord({"num-examples": 10})
    model = sent.content["arrays"]
    layout = ArrayLayout.of(model)
    stacked = stack_updates([Message(content, reply_to=sent)], layout.flatten(model), layout)
    assert stacked.excluded == 1 and len(stacked.node_ids) == 0
