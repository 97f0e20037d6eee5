"""Stamen's Flower ClientApp (Message API): one client step per Flower action.

Flower routes a message of type ``"<category>.<action>"`` to the step registered for it:
``train`` (local SGD: FedAvg, FedProx, robust aggregation, FedDF), ``train.mime`` (Mime's
and MimeLite's steps), ``train.secure`` (local SGD, replied as secret shares),
``query.gradient`` (Mime's gradient phase), ``train.powersgd`` and ``query.powersgd``
(two-phase PowerSGD), ``evaluate`` and ``query`` (which partition a node holds). Handlers
only translate messages: they unpack ``"arrays"`` and ``"config"``, call plain functions, and
reply with ``"arrays"`` and a ``MetricRecord`` holding ``"num-examples"``, as Flower's own
strategies expect. Settings a message does not carry
fall back to the run config, so flwr's built-in strategies work too. The node's data comes
from its node config: its partition (``partition-id``, ``num-partitions``) of the run's data
set, or its own files (``data``).
"""

from __future__ import annotations

from flwr.app import Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from stamen.clients.local_training import LocalTraining
from stamen.clients.mime_step import gradient_reply, mime_train_reply
from stamen.clients.node import experiment_of, load_global_model, node_data, node_partition
from stamen.clients.powersgd_step import powersgd_phase_reply, powersgd_train_reply
from stamen.clients.training import evaluate
from stamen.messages.keys import (
    ARRAYS,
    CONFIG,
    GRADIENT_ACTION,
    METRICS,
    MIME_ACTION,
    MODEL,
    NUM_PARTITIONS,
    PARTITION_ID,
    POWERSGD_ACTION,
    SECURE_ACTION,
)

app = ClientApp()


@app.train()
def train_handler(msg: Message, context: Context) -> Message:
    """Load the global model, train locally, and reply with the new model (or the update
    through the node's attack or worker momentum)."""
    task = LocalTraining.of(msg, context)
    return task.reply(task.model.state_dict(), task.run())


@app.train(SECURE_ACTION)
def secure_train_handler(msg: Message, context: Context) -> Message:
    """Train locally and reply with the update's secret shares."""
    task = LocalTraining.of(msg, context, secure=True)
    return task.reply(task.model.state_dict(), task.run())


@app.train(MIME_ACTION)
def mime_train_handler(msg: Message, context: Context) -> Message:
    """Mime's or MimeLite's local steps with the server's optimizer state frozen."""
    return mime_train_reply(msg, context)


@app.query(GRADIENT_ACTION)
def gradient_handler(msg: Message, context: Context) -> Message:
    """Mime's gradient phase: ``grad f_i(x)`` over this client's data."""
    return gradient_reply(msg, context)


@app.train(POWERSGD_ACTION)
def powersgd_train_handler(msg: Message, context: Context) -> Message:
    """Two-phase PowerSGD, first phase: train locally, reply ``M Q`` per matrix."""
    return powersgd_train_reply(msg, context)


@app.query(POWERSGD_ACTION)
def powersgd_phase_handler(msg: Message, context: Context) -> Message:
    """Two-phase PowerSGD, second phase: reply ``M^T P`` per matrix."""
    return powersgd_phase_reply(msg, context)


@app.evaluate()
def evaluate_handler(msg: Message, context: Context) -> Message:
    """Evaluate the global model on this client's share of the test split."""
    experiment = experiment_of(context)
    config = msg.content.get(CONFIG, {})
    model, device = load_global_model(experiment, msg.content[ARRAYS], config.get(MODEL))
    data, indices = node_data(experiment, context, "test")
    metrics = evaluate(model, data, data.test, indices, experiment.eval_batch_size, device)
    return Message(RecordDict({METRICS: MetricRecord(metrics)}), reply_to=msg)


@app.query()
def query_handler(msg: Message, context: Context) -> Message:
    """Tell the server which partition this node holds (used to order nodes by seed)."""
    partition_id, num_partitions = node_partition(context)
    metrics = MetricRecord({PARTITION_ID: partition_id, NUM_PARTITIONS: num_partitions})
    return Message(RecordDict({METRICS: metrics}), reply_to=msg)
