"""Distance rules in float32 when every input shares a large offset (worker momentum, a
model-sized shift): they must agree with float64 references that subtract rows directly.

25 inputs of dimension 1000: a common offset of norm 1e4, per-coordinate spread 0.1, and one
Byzantine row (index 7) whose spread is 1.3x, so it is the farthest input from the rest. The
uncentred product ``||x_i||^2 + ||x_j||^2 - 2 <x_i, x_j>`` (norms 1e8, float32 eps 6e-8) has
errors of the size of the distances themselves (about 20) and ranks that row among the honest.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from stamen.algorithms.aggregation import (
    Bulyan,
    CenteredClip,
    GeometricMedian,
    Krum,
    MultiKrum,
    primitives,
)

N, D, F, BYZANTINE = 25, 1000, 5, 7


def offset_inputs(count: int, seed: int) -> tuple[Tensor, Tensor]:
    """A float64 offset (1000,) of norm 1e4 and standard normal noise (count, 1000)."""
    generator = torch.Generator().manual_seed(seed)
    offset = torch.randn(D, generator=generator, dtype=torch.float64)
    noise = torch.randn(count, D, generator=generator, dtype=torch.float64)
    return offset * 1e4 / offset.norm(), noise


@pytest.fixture
def offset_updates() -> Tensor:
    """(25, 1000) float32: offset of norm 1e4, spread 0.1, row 7 spread 0.13."""
    offset, noise = offset_inputs(N, 0)
    spread = torch.full((N, 1), 0.1, dtype=torch.float64)
    spread[BYZANTINE] = 0.13
    return (offset + spread * noise).float()


def distances64(x: Tensor) -> Tensor:
    """Squared distances ``||x_i - x_j||^2``, shape (n, n), from row differences in float64."""
    x = x.double()
    return ((x[:, None, :] - x[None, :, :]) ** 2).sum(dim=2)


def krum_order(distances: Tensor, f: int) -> list[int]:
    """Indices sorted by Krum score (sum of the n-f-2 smallest distances to others)."""
    n = len(distances)
    scores = [sorted(distances[i, j].item() for j in range(n) if j != i) for i in range(n)]
    totals = [sum(s[: max(1, n - f - 2)]) for s in scores]
    return sorted(range(n), key=lambda i: (totals[i], i))


def reference_bulyan(x: Tensor, f: int) -> Tensor:
    """Iterated Krum picks n-2f rows; per coordinate, the mean of the n-4f closest to the median."""
    distances = distances64(x)
    remaining, chosen = list(range(len(x))), []
    for _ in range(len(x) - 2 * f):
        sub = distances[remaining][:, remaining]
        chosen.append(remaining.pop(krum_order(sub, f)[0]))
    selected = x.double()[chosen]
    median = selected.sort(dim=0).values[(len(chosen) - 1) // 2]
    closest = (selected - median).abs().argsort(dim=0, stable=True)[: len(x) - 4 * f]
    return selected.gather(0, closest).mean(dim=0)


def reference_cclip(x: Tensor, centre: Tensor, tau: float, iters: int) -> Tensor:
    x, v = x.double(), centre.double()
    for _ in range(iters):
        diff = x - v
        v = v + (diff * (tau / diff.norm(dim=1, keepdim=True)).clamp(max=1.0)).mean(0)
    return v


def reference_weiszfeld(x: Tensor, iterations: int, nu: float) -> Tensor:
    x = x.double()
    v = torch.zeros_like(x[0])
    for _ in range(iterations):
        betas = (1 / len(x)) / (x - v).norm(dim=1).clamp_min(nu)
        v = (betas[:, None] * x).sum(0) / betas.sum()
    return v


def test_the_byzantine_row_is_the_farthest_in_float64(offset_updates: Tensor) -> None:
    assert krum_order(distances64(offset_updates), F)[-1] == BYZANTINE


def test_krum_picks_the_float64_choice(offset_updates: Tensor) -> None:
    best = krum_order(distances64(offset_updates), F)[0]
    assert torch.equal(Krum(f=F).aggregate(offset_updates)[0], offset_updates[best])


def test_multi_krum_averages_the_float64_choice(offset_updates: Tensor) -> None:
    m = N - F
    chosen = krum_order(distances64(offset_updates), F)[:m]
    result = MultiKrum(f=F, m=m).aggregate(offset_updates)[0]
    # One row swapped for another moves the mean by about 0.1 / 20 per coordinate.
    torch.testing.assert_close(
        result.double(), offset_updates.double()[chosen].mean(0), rtol=0, atol=1e-3
    )


def test_bulyan_matches_the_float64_reference(offset_updates: Tensor) -> None:
    result = Bulyan(f=F).aggregate(offset_updates)[0]
    torch.testing.assert_close(
        result.double(), reference_bulyan(offset_updates, F), rtol=0, atol=1e-3
    )


def test_cclip_from_a_nearby_centre_matches_the_float64_reference(offset_updates: Tensor) -> None:
    # The previous aggregate sits next to the inputs, as with worker momentum; tau = 2 clips
    # most rows (their distances to the mean are about 3), so the weights hinge on distances.
    centre = offset_updates.double().mean(0).float() + 0.05
    result, _ = CenteredClip(tau=2.0, iters=3).aggregate(offset_updates, centre)
    torch.testing.assert_close(
        result.double(), reference_cclip(offset_updates, centre, 2.0, 3), rtol=0, atol=1e-3
    )


def test_rfa_matches_the_float64_reference(offset_updates: Tensor) -> None:
    result = GeometricMedian(T=8, nu=0.1).aggregate(offset_updates)[0]
    torch.testing.assert_close(
        result.double(), reference_weiszfeld(offset_updates, 8, 0.1), rtol=0, atol=1e-3
    )


@pytest.mark.parametrize(
    ("count", "centre"), [(50, "none"), (33, "point"), (16, "none"), (7, "origin")]
)
def test_centred_gram_distances_hold_across_column_blocks(
    monkeypatch: pytest.MonkeyPatch, count: int, centre: str
) -> None:
    # 300 columns per block: 1000 columns in 4 blocks, the last one short. 50, 34, 16 and 8
    # rows: the product's second row group (whole 16-row tiles, up to half the rows) is 16, 16,
    # 0 and 0 rows.
    rows = count if centre == "none" else count + 1
    monkeypatch.setattr(primitives, "_CPU_BLOCK_BYTES", rows * 300 * 4)
    offset, noise = offset_inputs(count, 2)
    x = (offset + 0.1 * noise).float()
    if centre == "none":
        points, gram = x, primitives.gram_matrix(x)
    elif centre == "point":
        point = x[:3].double().mean(0).float()
        points, gram = torch.cat([x, point[None]]), primitives.gram_with_centre(x, point)
    else:
        points, gram = torch.cat([x, torch.zeros(1, D)]), primitives.gram_with_centre(x, None)
    torch.testing.assert_close(
        primitives.pairwise_squared_distances(gram), distances64(points), rtol=1e-4, atol=1e-3
    )


def test_the_centring_reference_is_not_an_outlier() -> None:
    # Row 0 sits 100 per coordinate away from the others. Centred on it, the others would
    # carry norms of about 3000 into float32 products; the reference is the medoid instead.
    offset, noise = offset_inputs(N, 1)
    x = offset + 0.1 * noise
    x[0] += 100.0
    x = x.float()
    torch.testing.assert_close(
        primitives.pairwise_squared_distances(primitives.gram_matrix(x)),
        distances64(x),
        rtol=1e-4,
        atol=1e-3,
    )


def test_the_uncentred_product_is_kept_without_a_shared_offset() -> None:
    # Centring costs a pass over the inputs; standard normal rows (norms^2 about d, distances^2
    # about 2d) do not need it, so the Gram matrix is X X^T itself.
    x = torch.randn(N, D, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(primitives.gram_matrix(x), (x @ x.T).double())
