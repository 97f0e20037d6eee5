"""The global model a train message gives this node: its ``"arrays"``; a pruned model sent
sparse (``"pruned"``); or, with downlink compression, the node's copy of an earlier round's
model advanced by the message's compressed change (``"downlink"``, relative to the round
``downlink-base``); with a pruned model, its masks (``received_masks``).

The node keeps the last model it received in its ``Context.state`` (with its round): the
server sends a change only to nodes it knows hold the model of the round the change starts
from, and the whole model to any other. A change that starts from another round than the
node holds, or that is not what the method sends, fails this message (the server drops the
reply), never the node.
"""

from __future__ import annotations

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message

from stamen.algorithms.compression import DOWNLINK as DOWNLINK_CHANNEL
from stamen.algorithms.compression import MalformedPayload, RoundDraws
from stamen.algorithms.compression.settings import downlink_of
from stamen.errors import StamenError
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout
from stamen.messages.compressed import read_compressed
from stamen.messages.keys import ARRAYS, CONFIG, DOWNLINK, DOWNLINK_BASE, PRUNED, SERVER_ROUND
from stamen.messages.pruned import pruned_masks, unpruned
from stamen.messages.replies import Refused

HELD_MODEL, HELD_ROUND = "downlink-model", "downlink-round"


def received_model(msg: Message, context: Context, experiment: Experiment) -> ArrayRecord:
    """The model ``msg`` gives this node (kept as the node's copy when the run compresses
    the downlink)."""
    compression = downlink_of(experiment)
    if PRUNED in msg.content.array_records:
        try:
            arrays = unpruned(msg.content[PRUNED])
        except Refused as error:
            raise StamenError(f"malformed pruned model: {error}") from None
    elif compression is None or DOWNLINK not in msg.content.array_records:
        arrays = msg.content[ARRAYS]
    else:
        arrays = _advanced(msg, context, experiment)
    if compression is not None:
        config = msg.content.get(CONFIG, ConfigRecord())
        context.state[HELD_MODEL] = arrays
        context.state[HELD_ROUND] = ConfigRecord({SERVER_ROUND: int(config[SERVER_ROUND])})
    return arrays


def received_masks(msg: Message) -> dict[str, np.ndarray]:
    """The masks (True: kept) of the pruned model ``msg`` gives this node, by tensor name;
    none for a dense model. Called after ``received_model`` has checked the record."""
    if PRUNED not in msg.content.array_records:
        return {}
    return pruned_masks(msg.content[PRUNED])


def _advanced(msg: Message, context: Context, experiment: Experiment) -> ArrayRecord:
    config = msg.content[CONFIG]
    base, server_round = int(config[DOWNLINK_BASE]), int(config[SERVER_ROUND])
    held = context.state.get(HELD_ROUND, ConfigRecord()).get(SERVER_ROUND)
    if held != base:
        raise StamenError(f"the change starts from round {base}'s model, this node holds {held}")
    model = context.state[HELD_MODEL]
    layout = ArrayLayout.of(model)
    compression = downlink_of(experiment)
    draws = RoundDraws(experiment.seed, server_round, channel=DOWNLINK_CHANNEL)
    try:
        parts = compression.payload_layout(layout.float_tensors)
        payload, integers = read_compressed(msg.content[DOWNLINK], parts, layout)
        change = compression.decompress(payload, layout.float_tensors, draws)
    except (Refused, MalformedPayload) as error:
        raise StamenError(f"malformed downlink: {error}") from None
    return layout.unflatten(layout.flatten(model) + change, integers)
