"""A client's update as the compressed payload its reply carries (``"compressed"``).

The update (after the reply chain: attack or worker momentum) is compressed tensor by tensor
(``stamen.algorithms.compression``) and put on the wire as ``stamen.messages.compressed``
says. The compressor's state (error-feedback memory, PowerSGD's warm start) is the node's
``RoundMemory``, mirrored for ``--resume`` like worker momentum. The compressor's own
randomness is the node's stream of the round; shared coordinates come from the run's.
"""

from __future__ import annotations

import torch
from flwr.app import ArrayRecord

from stamen.algorithms.compression import Compression, RoundDraws
from stamen.clients.round_memory import RoundMemory
from stamen.messages.arrays import ArrayLayout, State
from stamen.messages.compressed import compressed_record

MEMORY_KEY = "uplink-memory"


def compress_update(
    compression: Compression,
    update: torch.Tensor,
    trained: State,
    memory: RoundMemory,
    seed: int,
    server_round: int,
    partition_id: int,
) -> ArrayRecord:
    """The payload for ``update`` (d,) of the model ``trained``; advances ``memory``."""
    layout = ArrayLayout.of_state(trained)
    draws = RoundDraws.of_client(seed, server_round, partition_id)
    before = memory.latest_before(server_round)
    payload, state = compression.compress(
        update, layout.float_tensors, draws, {} if before is None else before[1]
    )
    if state:
        memory.put(server_round, state)
    return compressed_record(payload, {key: trained[key] for key in layout.integer_keys})
