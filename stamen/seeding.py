"""Every random stream of a run, by name, derived from the run seed: the same seed gives
the same draws on every engine and in any order, and no two uses share a stream.

- ``run_rng(seed, RunStream.X)``: drawn once per run (which clients are Byzantine, which
  samples the server holds back, the Byzantine clients' iid data, FedDF's server data, the
  evaluation subset);
- ``client_rng(seed, round, partition, ClientStream.X)``: one client in one round (its
  batches and, from them, its torch seed; Mime's gradient batches and dropout);
- ``server_generator`` / ``server_seed(seed, round, ServerStream.X, *index)``: the server in
  one round (client sampling, the simulated attack, the aggregation rule's randomness,
  FedDF's distillation of architecture ``index``). Their keys carry the run seed as entropy
  and the stream in numpy's ``spawn_key``, so they can never equal a client's or a run's.
- ``shared_generator(seed, round, *index)``: drawn alike by every client and the server in
  one round (compression's shared coordinates of tensor ``index``), so what it draws never
  travels; keyed like the server's streams under a spawn-key word of its own.

The partitioners draw from ``default_rng(seed)`` of the run seed itself, in the order
flwr-datasets' partitioners do (their parity tests rely on it), and LEAF's synthetic data is
generated from it. Secret randomness (secure aggregation's noise and shares) never comes
from here: it is drawn from the operating system's CSPRNG (``secrets``).

Model initialisation and a client's dropout draw from torch's global generator, seeded right
before. Runs in threads of one process (``stamen bench --runs-per-worker``) share that
generator, so ``torch_seeded`` holds a process-wide lock while it is seeded: every run draws
what it would draw alone.
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Iterator

import numpy as np
import torch


class RunStream(enum.IntEnum):
    """Streams drawn once per run (the values are their keys: keep them)."""

    BYZANTINE_CLIENTS = 0x42595A  # which partitions are Byzantine ("BYZ", a spawn key)
    BYZANTINE_DATA = 0xB12
    SERVER_HOLDOUT = 0x5E4
    DISTILL_DATA = 0xD15
    EVAL_SUBSET = 0xE7A1


class ClientStream(enum.IntEnum):
    """Streams of one client in one round."""

    BATCHES = 0  # its mini-batches, then its torch seed (dropout, attack noise)
    GRADIENT_BATCHES = 1  # Mime: the batches of the full-batch gradient estimate
    DROPOUT = 2  # Mime: torch's generator during its steps
    COMPRESSION = 3  # its compressor's own randomness (QSGD's stochastic rounding)


class ServerStream(enum.IntEnum):
    """Streams of the server in one round."""

    SAMPLE_TRAIN = 1
    SAMPLE_EVALUATE = 2
    ATTACK = 3  # the simulated omniscient attack
    AGGREGATION = 4  # the aggregation rule (bucketing, resampling; secure's rule seed)
    DISTILLATION = 5  # FedDF, one per architecture


_SERVER = 0x5E5  # first spawn-key word of every server stream
_SHARED = 0x5A4  # first spawn-key word of the streams every party draws alike


def run_rng(seed: int, stream: RunStream) -> np.random.Generator:
    if stream is RunStream.BYZANTINE_CLIENTS:  # the first stream, keyed as numpy's spawn does
        return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(int(stream),)))
    return np.random.default_rng(np.random.SeedSequence([seed, int(stream)]))


def client_rng(
    seed: int, server_round: int, partition_id: int, stream: ClientStream = ClientStream.BATCHES
) -> np.random.Generator:
    """The generator of one client in one round, independent of the engine and of order."""
    key = [seed, server_round, partition_id] + ([int(stream)] if stream else [])
    return np.random.default_rng(np.random.SeedSequence(key))


def server_seed(seed: int, server_round: int, stream: ServerStream, *index: int) -> int:
    """A 63-bit seed of one server stream in one round (secure aggregation sends the rule's
    to S2, which draws from ``torch.Generator().manual_seed`` of it as the robust rule does)."""
    spawn_key = (_SERVER, server_round, int(stream), *index)
    state = np.random.SeedSequence(seed, spawn_key=spawn_key).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def server_generator(
    seed: int, server_round: int, stream: ServerStream, *index: int
) -> torch.Generator:
    return torch.Generator().manual_seed(server_seed(seed, server_round, stream, *index))


def shared_generator(seed: int, server_round: int, *index: int) -> torch.Generator:
    """The generator every client and the server build alike for ``index`` in one round."""
    key = np.random.SeedSequence(seed, spawn_key=(_SHARED, server_round, *index))
    return torch.Generator().manual_seed(int(key.generate_state(1, np.uint64)[0]) >> 1)


_LOCK = threading.RLock()


@contextlib.contextmanager
def torch_seeded(seed: int, device: torch.device | None = None) -> Iterator[None]:
    """Torch's generator seeded with ``seed`` inside, restored after (the CPU's, and the
    GPU's when ``device`` is one), one thread at a time."""
    devices = [device] if device is not None and device.type == "cuda" else []
    with _LOCK, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
