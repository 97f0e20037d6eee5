"""Each compressor of one tensor on tiny hand-computed examples (parts, their dtypes, what they
decompress to), the index dtypes, and PowerSGD's warm start reaching the best rank-r error."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.compression import RoundDraws, parse_compression
from stamen.algorithms.compression.base import index_dtype, pack_bits, unpack_bits
from stamen.algorithms.compression.powersgd import PowerSGD
from stamen.algorithms.compression.qsgd import QSGD
from stamen.algorithms.compression.rand_k import RandK
from stamen.algorithms.compression.random_block import RandomBlock
from stamen.algorithms.compression.sign import ScaledSign
from stamen.algorithms.compression.top_k import TopK


def draws(server_round: int = 1, private_seed: int = 0, tensor: int = 0):
    return RoundDraws(seed=0, server_round=server_round, private_seed=private_seed).of(tensor)


def roundtrip(compressor, x: torch.Tensor, server_round: int = 1, private_seed: int = 0):
    """The parts of ``x`` and what they decompress to, checked against ``parts_layout``."""
    parts, _ = compressor.compress(x, draws(server_round, private_seed), {})
    layout = compressor.parts_layout(tuple(x.shape))
    assert {key: (tuple(value.shape), value.dtype) for key, value in parts.items()} == layout
    return parts, compressor.decompress(parts, tuple(x.shape), draws(server_round))


# --- top-k -----------------------------------------------------------------------------------


def test_top_k_keeps_the_largest_magnitudes_with_uint8_indices():
    parts, out = roundtrip(TopK(ratio=0.5), torch.tensor([1.0, -4.0, 2.0, 3.0]))
    assert parts["indices"].dtype == torch.uint8
    order = parts["indices"].long().argsort()
    assert parts["indices"][order].tolist() == [1, 3]
    torch.testing.assert_close(parts["values"][order], torch.tensor([-4.0, 3.0]))
    torch.testing.assert_close(out, torch.tensor([0.0, -4.0, 0.0, 3.0]))


def test_top_k_keeps_at_least_one_coordinate_and_keeps_the_shape():
    x = torch.tensor([[0.5, -0.1], [0.2, 0.3]])
    parts, out = roundtrip(TopK(ratio=0.01), x)
    assert parts["indices"].tolist() == [0]
    torch.testing.assert_close(out, torch.tensor([[0.5, 0.0], [0.0, 0.0]]))


@pytest.mark.parametrize(
    ("size", "dtype"),
    [
        (1, torch.uint8),
        (256, torch.uint8),
        (257, torch.uint16),
        (65536, torch.uint16),
        (65537, torch.uint32),
        (2**32, torch.uint32),
        (2**32 + 1, torch.int64),
    ],
)
def test_index_dtype_is_the_smallest_unsigned_type_holding_every_index(size, dtype):
    assert index_dtype(size) == dtype


@pytest.mark.parametrize(
    ("size", "dtype"), [(256, torch.uint8), (257, torch.uint16), (65537, torch.uint32)]
)
def test_top_k_indices_travel_in_the_index_dtype(size, dtype):
    x = torch.randn(size, generator=torch.Generator().manual_seed(size))
    parts, out = roundtrip(TopK(ratio=0.01), x)
    assert parts["indices"].dtype == dtype
    kept = parts["indices"].long()
    assert int(kept.max()) < size
    # the largest magnitude survives the cast of its index
    assert int(x.abs().argmax()) in kept.tolist()
    torch.testing.assert_close(out[kept], x[kept])


# --- sign ------------------------------------------------------------------------------------


def test_sign_sends_the_mean_magnitude_and_one_bit_per_coordinate():
    parts, out = roundtrip(ScaledSign(), torch.tensor([1.0, -2.0, 0.0, -3.0]))
    torch.testing.assert_close(parts["scale"], torch.tensor([1.5]))
    # + - + - (zero counts as +), most significant bit first: 0b1010_0000
    assert parts["signs"].dtype == torch.uint8
    assert parts["signs"].tolist() == [0b1010_0000]
    torch.testing.assert_close(out, torch.tensor([1.5, -1.5, 1.5, -1.5]))


def test_sign_packs_eight_coordinates_to_a_byte():
    x = torch.tensor([-1.0] * 8 + [2.0, -2.0, 2.0])
    parts, out = roundtrip(ScaledSign(), x)
    assert parts["signs"].tolist() == [0, 0b1010_0000]
    scale = 14.0 / 11
    torch.testing.assert_close(out, scale * torch.sign(x))


def test_pack_bits_inverts_unpack_bits():
    bits = torch.rand(37, generator=torch.Generator().manual_seed(3)) > 0.5
    packed = pack_bits(bits)
    assert packed.dtype == torch.uint8 and packed.shape == (5,)
    assert torch.equal(unpack_bits(packed, 37), bits)


# --- qsgd ------------------------------------------------------------------------------------


@pytest.mark.parametrize("private_seed", range(5))
def test_qsgd_with_one_level_is_exact_on_a_one_hot_vector(private_seed):
    x = torch.tensor([0.0, 0.0, -3.0, 0.0, 0.0])
    parts, out = roundtrip(QSGD(levels=1), x, private_seed=private_seed)
    torch.testing.assert_close(parts["norm"], torch.tensor([3.0]))
    assert parts["levels"].tolist() == [0, 0, 1, 0, 0]
    torch.testing.assert_close(out, x)


def test_qsgd_levels_lie_between_the_two_nearest_levels():
    x = torch.tensor([3.0, -4.0, 0.0])  # norm 5, scaled magnitudes with 4 levels: 2.4, 3.2, 0
    for private_seed in range(20):
        parts, out = roundtrip(QSGD(levels=4), x, private_seed=private_seed)
        levels = parts["levels"].tolist()
        assert levels[0] in (2, 3) and levels[1] in (3, 4) and levels[2] == 0
        signs = torch.tensor([1.0, -1.0, 1.0])  # zero counts as +
        torch.testing.assert_close(out, 5.0 * signs * torch.tensor(levels).float() / 4)


@pytest.mark.parametrize(
    ("levels", "dtype"),
    [(1, torch.uint8), (255, torch.uint8), (256, torch.uint16), (65535, torch.uint16)],
)
def test_qsgd_levels_travel_in_the_smallest_unsigned_type(levels, dtype):
    x = torch.randn(10, generator=torch.Generator().manual_seed(levels))
    parts, out = roundtrip(QSGD(levels=levels), x)
    assert parts["levels"].dtype == dtype
    # with many levels the quantisation error is at most norm / levels per coordinate
    torch.testing.assert_close(out, x, rtol=0, atol=float(x.norm()) / levels + 1e-6)


# --- powersgd --------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(8, 6), (5, 3, 4)])
def test_powersgd_rank_one_reconstructs_an_outer_product(shape):
    generator = torch.Generator().manual_seed(4)
    u = torch.randn(shape[0], generator=generator)
    v = torch.randn(torch.Size(shape[1:]).numel(), generator=generator)
    x = torch.outer(u, v).reshape(shape)
    parts, out = roundtrip(PowerSGD(rank=1), x)
    assert set(parts) == {"p", "q"}
    assert parts["p"].shape == (shape[0], 1)
    torch.testing.assert_close(out, x, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", [(5,), (2, 2), (3, 1)])
def test_powersgd_sends_vectors_and_tiny_matrices_dense(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(5))
    parts, out = roundtrip(PowerSGD(rank=1), x)
    assert set(parts) == {"values"}
    torch.testing.assert_close(out, x)


def test_powersgd_warm_start_reaches_the_best_rank_r_error():
    """A rank-2 signal plus noise, compressed again and again with the state fed back: the
    power iteration continues across rounds and the error falls to the truncated SVD's."""
    generator = torch.Generator().manual_seed(6)
    m, n, rank = 40, 30, 2
    u, _ = torch.linalg.qr(torch.randn(m, n, generator=generator))
    v, _ = torch.linalg.qr(torch.randn(n, n, generator=generator))
    spectrum = torch.cat([torch.tensor([10.0, 8.0]), torch.linspace(5.0, 0.5, n - rank)])
    matrix = u @ torch.diag(spectrum) @ v.T
    singular = torch.linalg.svdvals(matrix)
    best = float(singular[rank:].square().sum().sqrt())

    compression = parse_compression(f"powersgd(rank={rank})")
    tensors = [("w", (m, n))]
    state: dict[str, torch.Tensor] = {}
    errors = []
    for server_round in range(1, 16):
        round_draws = RoundDraws(seed=0, server_round=server_round)
        payload, state = compression.compress(matrix.reshape(-1), tensors, round_draws, state)
        assert set(state) == {"w/q"} and state["w/q"].shape == (n, rank)
        out = compression.decompress(payload, tensors, round_draws).view(m, n)
        errors.append(float((matrix - out).norm()))

    assert errors[0] > 1.1 * best  # one power step from a random start is not the optimum
    assert all(error <= errors[0] * (1 + 1e-5) for error in errors)
    assert errors[-1] <= best * (1 + 1e-3)
    assert errors[-1] >= best * (1 - 1e-4)  # nothing beats the truncated SVD


def test_powersgd_without_its_state_does_not_improve():
    generator = torch.Generator().manual_seed(6)
    matrix = torch.randn(40, 30, generator=generator)
    compressor = PowerSGD(rank=2)
    errors = []
    for server_round in (1, 2, 3):
        parts, state = compressor.compress(matrix, draws(server_round), {})
        assert set(state) == {"q"}
        out = compressor.decompress(parts, (40, 30), draws(server_round))
        errors.append(float((matrix - out).norm()))
    # fresh random starts every round: different approximations, none near the best
    assert len(set(errors)) == 3
    best = float(torch.linalg.svdvals(matrix)[2:].square().sum().sqrt())
    assert min(errors) > 1.01 * best


# --- random-block and rand-k -----------------------------------------------------------------


def test_random_block_keeps_a_contiguous_block_that_may_wrap():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    offsets = set()
    for server_round in range(1, 41):
        parts, out = roundtrip(RandomBlock(ratio=0.5), x, server_round=server_round)
        positions = out.nonzero().flatten().tolist()
        assert len(positions) == 2
        offset = next(p for p in positions if (p + 1) % 4 in positions)
        offsets.add(offset)
        block = [offset, (offset + 1) % 4]
        torch.testing.assert_close(parts["values"], x[block])
        expected = torch.zeros(4)
        expected[block] = x[block]
        torch.testing.assert_close(out, expected)
    assert offsets == {0, 1, 2, 3}  # including the block that wraps past the end


@pytest.mark.parametrize("shape", [(4,), (10,), (7, 3)])
def test_rand_k_keeps_k_values_and_zeros_elsewhere(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(7)).abs() + 0.1
    compressor = RandK(ratio=0.5)
    k = round(0.5 * x.numel())
    for server_round in range(1, 6):
        parts, out = roundtrip(compressor, x, server_round=server_round)
        assert parts["values"].shape == (k,)
        kept = out != 0
        assert int(kept.sum()) == k
        torch.testing.assert_close(out[kept], x[kept])
        assert sorted(parts["values"].tolist()) == sorted(x[kept].tolist())
