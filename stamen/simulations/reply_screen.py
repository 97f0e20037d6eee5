"""Screening of training replies before any strategy sees them.

Every strategy, Stamen's and flwr's own, gets only replies that are well formed. The grid
(``ordered_grid``) drops a reply when

- the client failed (its error reply's reason is kept),
- its payload is more than ``MAX_REPLY_RATIO`` times what it was sent (or, when the server
  sent the model compressed or pruned, than the model's size it declares, ``model-bytes``),
  plus 1 MiB (a reply carries at most a model, a gradient or two shares of the update: about
  2x),
- it carries a model (``"arrays"``) that fails the reply checks (``stamen.messages.replies``,
  the strategies' own) against the ``"arrays"`` it was sent: exactly their keys, shapes and
  dtypes, finite values, a positive finite ``"num-examples"`` in its one MetricRecord. The
  keys sent in another order, and arrays returned as a list in the order sent (keys ``"0"``,
  ``"1"``, ..., from ``ArrayRecord(numpy_ndarrays=...)``, as Flower's classic ClientApps
  reply), are accepted and put under the keys sent, in the order sent (``with_sent_keys``).

Replies without a model (secure shares, Mime's gradients) are checked by their strategy. A
node messaged but silent until the round's timeout (crashed, hung, disconnected) is dropped
too. Each dropped node and the reason go to the log and to the run's results.
"""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass

from flwr.app import Message, RecordDict

from stamen.messages.arrays import ArrayLayout, array_values, keyed_as
from stamen.messages.keys import ARRAYS, CONFIG, MODEL_BYTES
from stamen.messages.replies import Refused, error_of, examples_of, model_of, require_finite
from stamen.simulations.traffic import payload_bytes

MAX_REPLY_RATIO = 4
_SLACK_BYTES = 2**20
NO_REPLY = "no reply before the round's timeout"


@dataclass(frozen=True)
class Dropped:
    node_id: int
    reason: str


def refusal(sent: Message, reply: Message) -> str | None:
    """Why ``reply`` (to the training message ``sent``) is refused, or None."""
    failed = error_of(reply)
    if failed is not None:
        return failed
    declared = sent.content.config_records.get(CONFIG, {}).get(MODEL_BYTES, 0)
    allowed = max(payload_bytes(sent), int(declared))
    size, limit = payload_bytes(reply), MAX_REPLY_RATIO * allowed + _SLACK_BYTES
    if size > limit:
        return f"reply of {size / 1e6:.1f} MB over the {limit / 1e6:.1f} MB allowed"
    if ARRAYS not in reply.content.array_records or ARRAYS not in sent.content.array_records:
        return None  # no model (e.g. secure shares, a gradient): the strategy checks it
    try:
        model = model_of(reply.content[ARRAYS], ArrayLayout.of(sent.content[ARRAYS]))
        for key in model:
            require_finite(array_values(model[key]), key)
        examples_of(reply)
    except Refused as refused:
        return str(refused)
    return None


def with_sent_keys(sent: Message, reply: Message) -> Message:
    """``reply``, or a copy of it whose ``"arrays"`` carry the keys of the ``"arrays"`` it was
    sent, in that order, when it returned them otherwise (``keyed_as``: as a list, or
    reordered), so that every strategy, flwr's FedAvg included, reads the model by name. For
    replies that ``refusal`` accepts."""
    if reply.has_error() or any(ARRAYS not in m.content.array_records for m in (sent, reply)):
        return reply
    returned = reply.content[ARRAYS]
    found = keyed_as(returned, list(sent.content[ARRAYS].keys()))
    if found is None or found is returned:
        return reply
    renamed = copy(reply)  # same metadata; the reply received is left as it was
    renamed.content = RecordDict({**reply.content, ARRAYS: found})
    return renamed
