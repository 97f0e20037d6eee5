"""Replies read in place: ``array_values``, ``keyed_as`` and ``stack_updates``."""

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict

from stamen.messages.arrays import ArrayLayout, array_of, array_values, keyed_as
from stamen.messages.replies import stack_updates

VALUES = [
    np.arange(12, dtype=np.float32).reshape(3, 4),
    np.asfortranarray(np.arange(12, dtype=np.float64).reshape(3, 4)),
    np.arange(6, dtype=">f4").reshape(2, 3),  # big-endian
    np.array(7, dtype=np.int64),  # a scalar (BatchNorm's counter)
    np.zeros((0, 5), dtype=np.float32),
    np.array([True, False]),
]


@pytest.mark.parametrize("values", VALUES)
def test_array_values_equals_numpy_without_copying(values):
    array = Array(values)
    found = array_values(array)
    np.testing.assert_array_equal(found, array.numpy())
    assert found.dtype == values.dtype and found.shape == values.shape
    assert not found.flags.writeable  # a view of the Array's bytes


@pytest.mark.parametrize("values", VALUES)
def test_array_of_holds_what_flwr_array_holds(values):
    expected, found = Array(values), array_of(values)
    assert found.dtype == expected.dtype and found.shape == expected.shape
    assert found.stype == expected.stype
    np.testing.assert_array_equal(found.numpy(), values)
    if values.flags.c_contiguous:  # np.save keeps a Fortran array's order; we write C order
        assert found.data == expected.data


@pytest.mark.parametrize("tensor", [torch.tensor(7), torch.randn(3, 4), torch.randn(4, 3).t()])
def test_array_of_a_tensor_holds_what_flwr_array_holds(tensor):
    np.testing.assert_array_equal(array_of(tensor).numpy(), Array(tensor).numpy())


def test_stack_updates_writes_each_valid_model_minus_the_reference(tmp_path):
    from stamen.clients.client_app import app
    from stamen.simulations.inline_engine import InlineGrid

    InlineGrid(app, {}, 1)  # sets the task identity Messages need
    arrays = {"w": np.ones((2, 3), np.float32), "b": np.zeros(2, np.float32)}
    reference = ArrayRecord({k: Array(v) for k, v in arrays.items()})
    layout = ArrayLayout.of(reference)
    flat_reference = layout.flatten(reference)
    sent = Message(RecordDict({"arrays": reference}), dst_node_id=1, message_type="train")

    def reply(w: float, b: float, examples: int = 10) -> Message:
        record = ArrayRecord(
            {"w": Array(np.full((2, 3), w, np.float32)), "b": Array(np.full(2, b, np.float32))}
        )
        metrics = MetricRecord({"num-examples": examples})
        content = RecordDict({"arrays": record, "metrics": metrics})
        return Message(content, reply_to=sent)

    stacked = stack_updates(
        [reply(3.0, 1.0), reply(float("nan"), 0.0), reply(0.0, -2.0, 5)], flat_reference, layout
    )
    assert stacked.excluded == 1 and stacked.num_examples == (10.0, 5.0)
    expected = torch.tensor([[2.0] * 6 + [1.0] * 2, [-1.0] * 6 + [-2.0] * 2])
    torch.testing.assert_close(stacked.updates, expected)


SENT = {"w": np.ones((2, 3), np.float32), "b": np.zeros(2, np.float32)}


def as_list(values: list[np.ndarray]) -> ArrayRecord:
    """As Flower's classic ClientApps reply: keys "0", "1", ..."""
    return ArrayRecord(numpy_ndarrays=values)


def test_keyed_as_keeps_a_record_with_the_keys_sent():
    record = ArrayRecord({k: Array(v) for k, v in SENT.items()})
    assert keyed_as(record, ["w", "b"]) is record


def test_keyed_as_names_a_list_in_the_order_sent_without_copying():
    record = as_list(list(SENT.values()))
    keyed = keyed_as(record, ["w", "b"])
    assert list(keyed.keys()) == ["w", "b"]
    assert keyed["w"].data is record["0"].data and keyed["b"].data is record["1"].data
    assert list(record.keys()) == ["0", "1"]  # the input is left as it was


def test_keyed_as_puts_the_keys_sent_in_the_order_sent():
    record = ArrayRecord({k: Array(SENT[k]) for k in ["b", "w"]})
    keyed = keyed_as(record, ["w", "b"])
    assert list(keyed.keys()) == ["w", "b"] and keyed["w"].data is record["w"].data


@pytest.mark.parametrize(
    "keys",
    [["0"], ["0", "1", "2"], ["1", "0"], ["w", "x"], ["w"], ["w", "b", "x"]],
    ids=["too few", "too many", "list out of order", "unknown key", "missing key", "extra key"],
)
def test_keyed_as_refuses_any_other_keys(keys):
    record = ArrayRecord({key: Array(np.zeros(2, np.float32)) for key in keys})
    assert keyed_as(record, ["w", "b"]) is None


def test_stack_updates_takes_a_list_in_the_order_sent_and_refuses_other_shapes():
    from stamen.clients.client_app import app
    from stamen.simulations.inline_engine import InlineGrid

    InlineGrid(app, {}, 1)  # sets the task identity Messages need
    reference = ArrayRecord({k: Array(v) for k, v in SENT.items()})
    layout = ArrayLayout.of(reference)
    sent = Message(RecordDict({"arrays": reference}), dst_node_id=1, message_type="train")

    def reply(values: list[np.ndarray]) -> Message:
        metrics = MetricRecord({"num-examples": 10})
        return Message(RecordDict({"arrays": as_list(values), "metrics": metrics}), reply_to=sent)

    listed = [np.full((2, 3), 3.0, np.float32), np.full(2, 1.0, np.float32)]
    stacked = stack_updates(
        [reply(listed), reply(listed[::-1]), reply(listed[:1])], layout.flatten(reference), layout
    )
    assert stacked.excluded == 2
    torch.testing.assert_close(stacked.updates, torch.tensor([[2.0] * 6 + [1.0] * 2]))
