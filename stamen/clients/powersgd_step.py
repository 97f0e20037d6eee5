"""The client's two steps of two-phase PowerSGD (Vogels, Karimireddy & Jaggi, NeurIPS 2019,
arXiv 1905.13553), the linear form that only needs sums at the server.

``train.powersgd``: local SGD from the global model gives the update; with error feedback
(``powersgd-feedback``) the node adds its memory, ``M = update + e``; it replies
``P_i = M Q`` for each matrix the server sent a ``Q`` for (a tensor of shape (m, ...) is the
matrix (m, n)), the other tensors whole, and keeps ``M`` for the second phase.
``query.powersgd``: given the orthonormalised mean ``P``, it replies ``Q_i = M^T P`` and keeps
``e <- M - P Q_i^T`` (its part outside the span of ``P``; over the clients these sum to the
paper's memory ``M - P Q^T`` with the mean ``Q``). Both are the node's ``RoundMemory``.
"""

from __future__ import annotations

import torch
from flwr.app import Context, Message, MetricRecord, RecordDict

from stamen.algorithms.compression import split
from stamen.clients.local_training import LocalTraining
from stamen.clients.node import experiment_of, node_memory
from stamen.clients.updates import flat_delta
from stamen.errors import StamenError
from stamen.messages.arrays import ArrayLayout, record_tensors, tensors_record
from stamen.messages.compressed import compressed_record
from stamen.messages.keys import CONFIG, FACTORS, METRICS, SERVER_ROUND

MEMORY_KEY, PENDING_KEY = "powersgd-memory", "powersgd-pending"


def powersgd_train_reply(msg: Message, context: Context) -> Message:
    """Train locally; reply ``P_i = M Q`` per matrix and the other tensors whole."""
    task = LocalTraining.of(msg, context, keep_start=True)
    metrics = task.run()
    trained = task.model.state_dict()
    update = task.transform()(flat_delta(task.start, trained)).detach().float().cpu()
    layout = ArrayLayout.of_state(trained)
    memory = node_memory(context, task.experiment, MEMORY_KEY)
    before = memory.latest_before(task.server_round)
    if task.experiment.powersgd_feedback and before is not None:
        update = update + before[1]["e"]
    pieces = {name: x for name, _, x in split(update, layout.float_tensors)}
    node_memory(context, task.experiment, PENDING_KEY).put(task.server_round, pieces)
    q = record_tensors(msg.content[FACTORS])
    parts = {}
    for name, x in pieces.items():
        if name in q:
            parts[f"{name}/p"] = _matrix(x, q[name]) @ q[name]
        else:
            parts[f"{name}/values"] = x.reshape(-1)
    integers = {key: trained[key] for key in layout.integer_keys}
    record = compressed_record(parts, integers)
    return Message(RecordDict({FACTORS: record, METRICS: MetricRecord(metrics)}), reply_to=msg)


def powersgd_phase_reply(msg: Message, context: Context) -> Message:
    """Given the mean ``P``, reply ``Q_i = M^T P`` per matrix; keep the error."""
    experiment = experiment_of(context)
    server_round = int(msg.content[CONFIG][SERVER_ROUND])
    pending = node_memory(context, experiment, PENDING_KEY).latest_before(server_round + 1)
    if pending is None or pending[0] != server_round:
        raise StamenError(f"no update of round {server_round} kept for PowerSGD's second phase")
    p = record_tensors(msg.content[FACTORS])
    errors, parts = [], {}
    for name, x in pending[1].items():
        if name in p:
            matrix = x.reshape(x.shape[0], -1)
            if tuple(p[name].shape[:1]) != matrix.shape[:1]:
                raise StamenError(f"P of {name} has shape {tuple(p[name].shape)}")
            q_i = matrix.T @ p[name]
            parts[f"{name}/q"] = q_i
            errors.append((matrix - p[name] @ q_i.T).reshape(-1))
        else:
            errors.append(torch.zeros(x.numel()))  # sent whole
    error = torch.cat(errors)
    if experiment.powersgd_feedback:
        node_memory(context, experiment, MEMORY_KEY).put(server_round, {"e": error})
    return Message(RecordDict({FACTORS: tensors_record(parts)}), reply_to=msg)


def _matrix(x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """``x`` as the matrix (m, n) that ``q`` (n, r) multiplies."""
    matrix = x.reshape(x.shape[0], -1) if x.dim() > 1 else x.reshape(1, -1)
    if q.dim() != 2 or q.shape[0] != matrix.shape[1]:
        raise StamenError(f"Q of shape {tuple(q.shape)} does not fit a tensor {tuple(x.shape)}")
    return matrix
