"""Flower ClientApps written like Flower's classic examples, knowing nothing of Stamen.

No query handler; the model read with ``to_numpy_ndarrays()`` and returned as a list
(``ArrayRecord(numpy_ndarrays=...)``: keys ``"0"``, ``"1"``, ...). Each client adds
``step(p)`` to every weight and reports ``examples(p)`` examples, ``p`` its partition, so
the aggregate can be computed by hand. Loaded by name (``tests.simulations.
foreign_client_app:app``) by both engines, with the repository root on ``PYTHONPATH``.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp


def step(partition_id: int) -> float:
    return 0.01 * (partition_id + 1)


def examples(partition_id: int) -> int:
    return 10 * (partition_id + 1)


def trained(msg: Message, context: Context) -> tuple[list[np.ndarray], int]:
    """The arrays received plus ``step(p)`` each, and ``p``."""
    partition_id = int(context.node_config["partition-id"])
    ndarrays = msg.content["arrays"].to_numpy_ndarrays()
    return [array + np.float32(step(partition_id)) for array in ndarrays], partition_id


def reply(msg: Message, ndarrays: list[np.ndarray], partition_id: int) -> Message:
    content = RecordDict(
        {
            "arrays": ArrayRecord(numpy_ndarrays=ndarrays),
            "metrics": MetricRecord({"num-examples": examples(partition_id)}),
        }
    )
    return Message(content=content, reply_to=msg)


app = ClientApp()


@app.train()
def train(msg: Message, context: Context) -> Message:
    ndarrays, partition_id = trained(msg, context)
    return reply(msg, ndarrays, partition_id)


mismatched_app = ClientApp()


@mismatched_app.train()
def train_mismatched(msg: Message, context: Context) -> Message:
    """As ``app``, but partition 0 returns its arrays in reverse order (wrong shapes)."""
    ndarrays, partition_id = trained(msg, context)
    return reply(msg, ndarrays[::-1] if partition_id == 0 else ndarrays, partition_id)
