"""Screening of training replies before any strategy sees them.

Every strategy, Stamen's and flwr's own, gets only replies that are well formed. The grid
(``ordered_grid``) drops a reply when

- the client failed (its error reply's reason is kept),
- its payload is more than ``MAX_REPLY_RATIO`` times what it was sent, plus 1 MiB
  (a reply carries at most a model, a gradient or two shares of the update: about 2x),
- its ``"arrays"`` do not have exactly the keys, shapes and dtypes of the ``"arrays"`` it was
  sent, or hold NaN or Inf,
- it carries a model without a positive ``"num-examples"`` in its ``"metrics"``.

A node messaged but silent until the round's timeout (crashed, hung, disconnected) is
dropped too. Each dropped node and the reason go to the log and to the run's results.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from flwr.app import Message

from stamen.simulations.traffic import payload_bytes
from stamen.strategies.flat_updates import array_values

MAX_REPLY_RATIO = 4
_SLACK_BYTES = 2**20
NO_REPLY = "no reply before the round's timeout"


@dataclass(frozen=True)
class Dropped:
    node_id: int
    reason: str


def refusal(sent: Message, reply: Message) -> str | None:
    """Why ``reply`` (to the training message ``sent``) is refused, or None."""
    if reply.has_error():
        return f"client error: {reply.error.reason}"
    size, limit = payload_bytes(reply), MAX_REPLY_RATIO * payload_bytes(sent) + _SLACK_BYTES
    if size > limit:
        return f"reply of {size / 1e6:.1f} MB over the {limit / 1e6:.1f} MB allowed"
    content = reply.content
    if "arrays" not in content.array_records or "arrays" not in sent.content.array_records:
        return None  # no model (e.g. secure shares, a gradient): the strategy checks it
    expected, found = sent.content["arrays"], content["arrays"]
    if list(found.keys()) != list(expected.keys()):
        return f"model keys {list(found.keys())[:4]} do not match those sent"
    for key, array in found.items():
        if tuple(array.shape) != tuple(expected[key].shape) or array.dtype != expected[key].dtype:
            return f"{key} has shape {tuple(array.shape)} {array.dtype}, not as sent"
        values = array_values(array)
        if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
            return f"{key} holds NaN or Inf"
    metrics = content.metric_records.get("metrics")
    examples = metrics.get("num-examples") if metrics is not None else None
    if not isinstance(examples, int | float) or examples <= 0:
        return "no positive num-examples"
    return None
