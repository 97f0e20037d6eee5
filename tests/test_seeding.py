"""Named random streams: reproducible, and no two uses share one."""

from __future__ import annotations

import itertools

import numpy as np
import torch

from stamen.seeding import (
    ClientStream,
    RunStream,
    ServerStream,
    client_rng,
    run_rng,
    server_generator,
    server_seed,
)


def _first_draws(rng: np.random.Generator) -> tuple:
    return tuple(rng.integers(2**62, size=4))


def test_every_stream_of_a_round_is_distinct():
    seed, server_round = 3, 1
    draws = {}
    for partition, stream in itertools.product(range(8), ClientStream):
        draws[("client", partition, stream)] = _first_draws(
            client_rng(seed, server_round, partition, stream)
        )
    for stream, index in itertools.product(ServerStream, range(4)):
        state = server_seed(seed, server_round, stream, index)
        draws[("server", stream, index)] = _first_draws(np.random.default_rng(state))
    for stream in RunStream:
        draws[("run", stream)] = _first_draws(run_rng(seed, stream))
    assert len(set(draws.values())) == len(draws)


def test_the_server_streams_do_not_repeat_a_clients_stream():
    """The collision this contract removes: the server's aggregation stream of round r was
    client 1's batch stream of round r."""
    client = np.random.SeedSequence([0, 5, 1]).generate_state(2)
    server = server_seed(0, 5, ServerStream.AGGREGATION)
    assert server != (int(client[0]) << 32 | int(client[1]))


def test_streams_are_reproducible_and_depend_on_the_seed():
    a = server_generator(0, 2, ServerStream.ATTACK)
    b = server_generator(0, 2, ServerStream.ATTACK)
    c = server_generator(1, 2, ServerStream.ATTACK)
    assert torch.equal(torch.rand(5, generator=a), torch.rand(5, generator=b))
    assert not torch.equal(torch.rand(5, generator=b), torch.rand(5, generator=c))
    assert _first_draws(client_rng(0, 1, 2)) == _first_draws(client_rng(0, 1, 2))


def test_client_and_run_streams_keep_their_keys():
    """The keys of the client and run streams are those the committed tables were made
    with: changing them changes every partition and batch."""
    legacy = np.random.default_rng(np.random.SeedSequence([7, 3, 2]))
    assert _first_draws(client_rng(7, 3, 2)) == _first_draws(legacy)
    legacy = np.random.default_rng(np.random.SeedSequence([7, 3, 2, 1]))
    assert _first_draws(client_rng(7, 3, 2, ClientStream.GRADIENT_BATCHES)) == _first_draws(legacy)
    legacy = np.random.default_rng(np.random.SeedSequence([7, 0x5E4]))
    assert _first_draws(run_rng(7, RunStream.SERVER_HOLDOUT)) == _first_draws(legacy)
