"""Compression specs on whole updates: error feedback loses nothing, shared coordinates,
unbiasedness, payload sizes, the receiver's checks, and bad specs refused in one line."""

from __future__ import annotations

import math

import pytest
import torch

from stamen.algorithms.compression import (
    COMPRESSORS,
    MalformedPayload,
    RoundDraws,
    parse_compression,
)
from stamen.errors import ConfigError
from stamen.experiment import Experiment

COMPRESSOR_SPECS = [
    "top-k(ratio=0.1)",
    "rand-k(ratio=0.1)",
    "random-block(ratio=0.1)",
    "sign",
    "qsgd(levels=4)",
    "powersgd(rank=2)",
]


def random_tensors(seed: int) -> list[tuple[str, tuple[int, ...]]]:
    """A model's tensors of random shapes: a matrix, its bias, a 3-d kernel, a scalar."""
    generator = torch.Generator().manual_seed(seed)
    m, n, k = (int(v) for v in torch.randint(3, 24, (3,), generator=generator))
    return [("fc.weight", (m, n)), ("fc.bias", (m,)), ("conv.weight", (k, 2, 3)), ("s", ())]


def size_of(tensors) -> int:
    return sum(math.prod(shape) for _, shape in tensors)


def payload_bytes(payload) -> int:
    return sum(part.numel() * part.element_size() for part in payload.values())


# --- error feedback --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("spec", COMPRESSOR_SPECS + ["unbiased | rand-k(ratio=0.2)"])
def test_error_feedback_sent_plus_memory_is_what_was_to_send(spec, seed):
    compression = parse_compression(f"ef | {spec}")
    tensors = random_tensors(seed)
    generator = torch.Generator().manual_seed(100 + seed)
    state: dict[str, torch.Tensor] = {}
    sent = torch.zeros(size_of(tensors))
    updates = torch.zeros(size_of(tensors))
    for server_round in range(1, 6):
        update = torch.randn(size_of(tensors), generator=generator) * server_round
        draws = RoundDraws(seed=seed, server_round=server_round, private_seed=7 + seed)
        payload, state = compression.compress(update, tensors, draws, state)
        sent += compression.decompress(payload, tensors, draws)
        updates += update
        assert bool(state["memory"].ne(0).any())  # lossy: something is left to send
    torch.testing.assert_close(sent + state["memory"], updates, rtol=1e-5, atol=1e-5)


def test_without_error_feedback_there_is_no_memory():
    compression = parse_compression("top-k(ratio=0.1)")
    tensors = random_tensors(0)
    _, state = compression.compress(torch.ones(size_of(tensors)), tensors, RoundDraws(0, 1), {})
    assert "memory" not in state


def test_error_feedback_memory_is_sent_in_the_next_round():
    """top-k keeping 1 of 2: what is not sent in round 1 is added to round 2's update."""
    compression = parse_compression("ef | top-k(ratio=0.5)")
    tensors = [("w", (2,))]
    draws = RoundDraws(0, 1)
    payload, state = compression.compress(torch.tensor([3.0, 1.0]), tensors, draws, {})
    torch.testing.assert_close(state["memory"], torch.tensor([0.0, 1.0]))
    payload, state = compression.compress(torch.tensor([0.0, 1.5]), tensors, draws, state)
    torch.testing.assert_close(
        compression.decompress(payload, tensors, draws), torch.tensor([0.0, 2.5])
    )
    torch.testing.assert_close(state["memory"], torch.tensor([0.0, 0.0]))


# --- shared coordinates ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["rand-k(ratio=0.05)", "random-block(ratio=0.05)"])
@pytest.mark.parametrize("seed", range(3))
def test_coordinates_are_shared_by_clients_whatever_their_private_seed(spec, seed):
    compression = parse_compression(spec)
    tensors = [("w", (40, 25)), ("b", (40,))]
    generator = torch.Generator().manual_seed(seed)
    positions = []
    for private_seed in (1, 2, 3):
        update = torch.randn(size_of(tensors), generator=generator)  # no zero coordinate
        draws = RoundDraws(seed=seed, server_round=5, private_seed=private_seed)
        payload, _ = compression.compress(update, tensors, draws, {})
        out = compression.decompress(payload, tensors, draws)
        positions.append(out.nonzero().flatten().tolist())
        torch.testing.assert_close(out[positions[-1]], update[positions[-1]])
    assert positions[0] == positions[1] == positions[2]
    assert len(positions[0]) == 50 + 2  # 5 % of each tensor


@pytest.mark.parametrize("spec", ["rand-k(ratio=0.05)", "random-block(ratio=0.05)"])
def test_coordinates_change_with_the_round_the_tensor_and_the_seed(spec):
    compressor = COMPRESSORS.create(spec)
    x = torch.arange(1.0, 1001.0)

    def kept(seed: int, server_round: int, tensor: int) -> tuple[int, ...]:
        draws = RoundDraws(seed=seed, server_round=server_round).of(tensor)
        parts, _ = compressor.compress(x, draws, {})
        return tuple(compressor.decompress(parts, (1000,), draws).nonzero().flatten().tolist())

    by_round = {kept(0, server_round, 0) for server_round in range(1, 11)}
    assert len(by_round) == 10
    assert kept(0, 1, 0) == kept(0, 1, 0)
    assert kept(0, 1, 0) != kept(0, 1, 1)
    assert kept(0, 1, 0) != kept(1, 1, 0)


# --- unbiasedness ----------------------------------------------------------------------------


def test_unbiased_rand_k_is_unbiased_over_rounds():
    compression = parse_compression("unbiased | rand-k(ratio=0.25)")
    tensors = [("w", (8, 5))]
    x = torch.randn(40, generator=torch.Generator().manual_seed(8))
    rounds = 4000
    total = torch.zeros(40)
    for server_round in range(rounds):
        draws = RoundDraws(seed=3, server_round=server_round)
        payload, _ = compression.compress(x, tensors, draws, {})
        out = compression.decompress(payload, tensors, draws)
        kept = out != 0
        assert int(kept.sum()) == 10
        torch.testing.assert_close(out[kept], 4 * x[kept])  # rescaled by d / k
        total += out
    # each coordinate: x_i d/k with probability k/d, else 0; standard deviation |x_i| sqrt(3)
    sigma = x.abs() * math.sqrt(3 / rounds)
    assert bool(((total / rounds - x).abs() <= 5 * sigma + 1e-6).all())


def test_rand_k_without_unbiased_shrinks_the_mean():
    compression = parse_compression("rand-k(ratio=0.25)")
    tensors = [("w", (40,))]
    x = torch.ones(40)
    total = torch.zeros(40)
    for server_round in range(20):
        draws = RoundDraws(seed=3, server_round=server_round)
        payload, _ = compression.compress(x, tensors, draws, {})
        total += compression.decompress(payload, tensors, draws)
    assert abs(float(total.mean()) / 20 - 0.25) < 1e-6


def test_qsgd_is_unbiased_over_private_seeds():
    compression = parse_compression("qsgd(levels=2)")
    tensors = [("w", (6, 5))]
    x = torch.randn(30, generator=torch.Generator().manual_seed(9))
    draws_count = 4000
    total = torch.zeros(30)
    for private_seed in range(draws_count):
        draws = RoundDraws(seed=0, server_round=1, private_seed=private_seed)
        payload, _ = compression.compress(x, tensors, draws, {})
        total += compression.decompress(payload, tensors, draws)
    # each coordinate is one of two neighbouring levels, norm / levels apart
    sigma = float(x.norm()) / 2 / 2 / math.sqrt(draws_count)
    torch.testing.assert_close(total / draws_count, x, rtol=0, atol=5 * sigma)


# --- payload sizes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("ef | top-k(ratio=0.01)", 1000 * 4 + 1000 * 4),  # uint32 indices: 100000 > 65536
        ("random-block(ratio=0.01)", 1000 * 4),
        ("ef | rand-k(ratio=0.01)", 1000 * 4),
        ("sign", 100000 // 8 + 4),
        ("qsgd(levels=15)", 4 + 100000 // 8 + 100000),
        ("powersgd(rank=4)", (1000 + 100) * 4 * 4),
    ],
)
def test_payload_bytes_of_a_large_matrix(spec, expected):
    compression = parse_compression(spec)
    tensors = [("w", (1000, 100))]
    update = torch.randn(100000, generator=torch.Generator().manual_seed(10))
    payload, _ = compression.compress(update, tensors, RoundDraws(0, 1), {})
    assert payload_bytes(payload) == expected
    layout = compression.payload_layout(tensors)
    assert sum(math.prod(shape) * dtype.itemsize for shape, dtype in layout.values()) == expected


def test_top_k_indices_are_uint32_over_65536_values():
    compression = parse_compression("ef | top-k(ratio=0.01)")
    tensors = [("w", (1000, 100))]
    payload, _ = compression.compress(torch.randn(100000), tensors, RoundDraws(0, 1), {})
    assert payload["w/indices"].dtype == torch.uint32
    assert payload["w/values"].dtype == torch.float32


# --- the receiver's checks -------------------------------------------------------------------


def valid_payload(spec: str, tensors):
    compression = parse_compression(spec)
    update = torch.randn(size_of(tensors), generator=torch.Generator().manual_seed(11))
    payload, _ = compression.compress(update, tensors, RoundDraws(0, 1), {})
    compression.decompress(payload, tensors, RoundDraws(0, 1))  # accepted as sent
    return compression, payload


def tamper(payload, key, value=None):
    changed = dict(payload)
    if value is None:
        del changed[key]
    else:
        changed[key] = value
    return changed


TOP_K_TENSORS = [("w", (10,)), ("b", (4,))]


def _nan_values(payload):
    values = payload["w/values"].clone()
    values[0] = float("nan")
    return tamper(payload, "w/values", values)


def _inf_values(payload):
    values = payload["w/values"].clone()
    values[-1] = float("-inf")
    return tamper(payload, "w/values", values)


def _index_out_of_range(payload):
    indices = payload["w/indices"].clone()
    indices[0] = 10  # the tensor has 10 values: 0 .. 9; uint8 holds it
    return tamper(payload, "w/indices", indices)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: tamper(p, "w/indices"), r"missing \['w/indices'\]"),
        (lambda p: tamper(p, "w/extra", torch.zeros(1)), r"unexpected \['w/extra'\]"),
        (lambda p: tamper(p, "w/indices", p["w/indices"].long()), "expected torch.uint8"),
        (lambda p: tamper(p, "w/values", p["w/values"].double()), "expected torch.float32"),
        (lambda p: tamper(p, "w/values", torch.zeros(6)), r"expected torch.float32 \(5,\)"),
        (lambda p: tamper(p, "b/values", p["b/values"].reshape(1, 2)), r"\(1, 2\)"),
        (_nan_values, "non-finite"),
        (_inf_values, "non-finite"),
        (_index_out_of_range, "top-k index 10 out of range 10"),
    ],
)
def test_malformed_top_k_payloads_are_refused(change, message):
    compression, payload = valid_payload("ef | top-k(ratio=0.5)", TOP_K_TENSORS)
    with pytest.raises(MalformedPayload, match=message):
        compression.decompress(change(payload), TOP_K_TENSORS, RoundDraws(0, 1))


def test_qsgd_level_above_levels_is_refused():
    tensors = [("w", (6,))]
    compression, payload = valid_payload("qsgd(levels=4)", tensors)
    levels = payload["w/levels"].clone()
    levels[2] = 4
    compression.decompress(tamper(payload, "w/levels", levels), tensors, RoundDraws(0, 1))
    levels[2] = 5
    with pytest.raises(MalformedPayload, match="qsgd level 5 over 4"):
        compression.decompress(tamper(payload, "w/levels", levels), tensors, RoundDraws(0, 1))


@pytest.mark.parametrize(
    ("spec", "key", "value"),
    [
        ("sign", "w/signs", torch.zeros(1, dtype=torch.uint8)),  # 12 signs take 2 bytes
        ("sign", "w/scale", torch.tensor([float("nan")])),
        ("powersgd(rank=1)", "w/p", torch.zeros(3, 2)),
        ("powersgd(rank=1)", "b/values", torch.zeros(3, dtype=torch.float16)),
        ("random-block(ratio=0.5)", "w/values", torch.zeros(7)),
        ("qsgd(levels=300)", "w/levels", torch.zeros(12, dtype=torch.uint8)),  # uint16 sent
    ],
)
def test_other_malformed_payloads_are_refused(spec, key, value):
    tensors = [("w", (3, 4)), ("b", (3,))]
    compression, payload = valid_payload(spec, tensors)
    with pytest.raises(MalformedPayload):
        compression.decompress(tamper(payload, key, value), tensors, RoundDraws(0, 1))


@pytest.mark.parametrize(
    ("spec", "key", "value", "message"),
    [
        ("sign", "w/scale", torch.tensor([-1.0]), "sign scale -1.0 is negative"),
        ("qsgd(levels=4)", "w/norm", torch.tensor([-2.0]), "qsgd norm -2.0 is negative"),
        ("top-k(ratio=0.5)", "w/indices", torch.zeros(6, dtype=torch.uint8), "indices repeat"),
    ],
)
def test_what_no_honest_sender_sends_is_refused(spec, key, value, message):
    """A negative scale or norm flips the decoded tensor; repeated indices hide values."""
    tensors = [("w", (3, 4))]
    compression, payload = valid_payload(spec, tensors)
    with pytest.raises(MalformedPayload, match=message):
        compression.decompress(tamper(payload, key, value), tensors, RoundDraws(0, 1))


@pytest.mark.parametrize(
    "spec", ["ef | random-block(ratio=0.5)", "ef | sign", "ef | top-k(ratio=0.5)"]
)
def test_a_tensor_without_values_travels_as_nothing(spec):
    tensors = [("empty", (0, 4)), ("w", (3,))]
    compression = parse_compression(spec)
    update = torch.tensor([1.0, -2.0, 3.0])
    payload, state = compression.compress(update, tensors, RoundDraws(0, 1), {})
    sent = compression.decompress(payload, tensors, RoundDraws(0, 1))
    torch.testing.assert_close(sent + state["memory"], update)


# --- specs -----------------------------------------------------------------------------------


def test_none_is_no_compression():
    assert parse_compression("none") is None
    assert parse_compression(" none ") is None


@pytest.mark.parametrize(
    ("spec", "error_feedback", "unbiased", "name"),
    [
        ("sign", False, False, "sign"),
        ("ef | top-k(ratio=0.01)", True, False, "top-k"),
        ("unbiased | random-block(ratio=0.5)", False, True, "random-block"),
        ("ef|unbiased|rand-k(ratio=1)", True, True, "rand-k"),
        ("ef | powersgd(rank=4, iters=2)", True, False, "powersgd"),
    ],
)
def test_good_specs(spec, error_feedback, unbiased, name):
    compression = parse_compression(spec)
    assert compression.error_feedback is error_feedback
    assert compression.unbiased is unbiased
    assert type(compression.compressor) is COMPRESSORS.get(name)


@pytest.mark.parametrize(
    ("spec", "allowed"),
    [
        ("bogus", "expected one of powersgd, qsgd, rand-k, random-block, sign, top-k"),
        ("top-k(ratio=0)", "ratio must be a number in (0, 1], got 0"),
        ("rand-k(ratio=1.5)", "ratio must be a number in (0, 1], got 1.5"),
        ("random-block(ratio=True)", "ratio must be a number in (0, 1]"),
        ("top-k", "needs ratio=..."),
        ("powersgd(rank=0)", "rank must be an integer >= 1, got 0"),
        ("powersgd(rank=2.5)", "rank must be an integer >= 1"),
        ("powersgd(rank=1, iters=0)", "iters must be an integer >= 1"),
        ("qsgd(levels=0)", "levels must be an integer >= 1, got 0"),
        ("sign(ratio=0.1)", "expected no arguments"),
        ("unbiased | top-k(ratio=0.1)", "a random sparsifier, one of rand-k, random-block"),
        ("unbiased | sign", "a random sparsifier, one of rand-k, random-block"),
        ("ef | ef | sign", "a wrapper is given twice"),
        ("ef", "must end with a compressor, one of powersgd, qsgd"),
        ("ef | unbiased", "must end with a compressor, one of powersgd, qsgd"),
        ("sign | ef", "write [ef |] [unbiased |] compressor"),
        ("ef | none", "must end with a compressor"),
        ("", "bad compressor spec"),
    ],
)
def test_bad_specs_are_one_line_config_errors(spec, allowed):
    with pytest.raises(ConfigError) as error:
        parse_compression(spec)
    message = str(error.value)
    assert allowed in message
    assert "\n" not in message


def test_experiment_refuses_a_bad_uplink():
    with pytest.raises(ConfigError, match="unknown compressor 'bogus'"):
        Experiment(uplink="bogus")


def test_experiment_refuses_uplink_compression_for_mime():
    with pytest.raises(ConfigError, match="uplink compression is not supported by strategy mime"):
        Experiment(strategy="mime", uplink="sign")
    Experiment(strategy="mime", uplink="none")
    Experiment(uplink="ef | sign")
