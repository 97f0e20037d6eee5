"""Smoothed Weiszfeld (RFA) and centred clipping: hand cases, explicit state, and agreement
with direct (materialising) reference loops."""

from __future__ import annotations

import pytest
import torch

from stamen.algorithms.aggregation import CenteredClip, GeometricMedian
from stamen.errors import ConfigError


def reference_weiszfeld(x: torch.Tensor, iterations: int, nu: float) -> torch.Tensor:
    v = torch.zeros_like(x[0])
    for _ in range(iterations):
        betas = (1 / len(x)) / (x - v).norm(dim=1).clamp_min(nu)
        v = (betas[:, None] * x).sum(0) / betas.sum()
    return v


def reference_cclip(x: torch.Tensor, v: torch.Tensor, tau: float, iters: int) -> torch.Tensor:
    for _ in range(iters):
        diff = x - v
        v = v + (diff * (tau / diff.norm(dim=1, keepdim=True)).clamp(max=1.0)).mean(0)
    return v


def test_weiszfeld_one_step_by_hand() -> None:
    # From v=0: distances 5 and 0 -> max(0.1, .) = 5 and 0.1; betas 0.5/5 = 0.1 and 0.5/0.1 = 5;
    # v = 0.1 * (3, 4) / 5.1 = (3/51, 4/51).
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    result, _ = GeometricMedian(T=1, nu=0.1).aggregate(x)
    torch.testing.assert_close(result, torch.tensor([3 / 51, 4 / 51], dtype=torch.float64))


def test_weiszfeld_symmetric_points_give_centre() -> None:
    # Symmetric around the origin and the origin itself: every step stays at 0.
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0], [0.0, 0.0]])
    torch.testing.assert_close(GeometricMedian().aggregate(x)[0], torch.zeros(2))


def test_weiszfeld_matches_reference_loop() -> None:
    x = torch.randn(9, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(
        GeometricMedian(T=8, nu=0.1).aggregate(x)[0], reference_weiszfeld(x, 8, 0.1)
    )


def test_cclip_one_step_by_hand() -> None:
    # Centre 0, tau=1: (3, 4) has norm 5 -> (0.6, 0.8); (0, 0.5) has norm 0.5 -> kept.
    # mean = (0.3, 0.65)
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5]], dtype=torch.float64)
    result, state = CenteredClip(tau=1, iters=1).aggregate(x)
    torch.testing.assert_close(result, torch.tensor([0.3, 0.65], dtype=torch.float64))
    torch.testing.assert_close(state, result)


def test_cclip_centres_on_given_state() -> None:
    # Centre (3, 4), tau=1: x0 - v = 0; x1 - v = (-3, -3.5), norm sqrt(21.25) -> unit vector.
    x = torch.tensor([[3.0, 4.0], [0.0, 0.5]], dtype=torch.float64)
    centre = torch.tensor([3.0, 4.0], dtype=torch.float64)
    result, _ = CenteredClip(tau=1, iters=1).aggregate(x, centre)
    expected = centre + torch.tensor([-3.0, -3.5], dtype=torch.float64) / 21.25**0.5 / 2
    torch.testing.assert_close(result, expected)
    torch.testing.assert_close(centre, torch.tensor([3.0, 4.0], dtype=torch.float64))


def test_cclip_state_chains_iterations() -> None:
    # Two calls of one iteration, feeding the state back, equal one call of two iterations.
    x = torch.randn(7, 30, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 5
    _, state = CenteredClip(tau=2, iters=1).aggregate(x)
    twice, _ = CenteredClip(tau=2, iters=1).aggregate(x, state)
    torch.testing.assert_close(twice, CenteredClip(tau=2, iters=2).aggregate(x)[0])


@pytest.mark.parametrize("with_state", [False, True])
def test_cclip_matches_reference_loop(with_state: bool) -> None:
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(11, 40, generator=generator, dtype=torch.float64) * 3
    centre = torch.randn(40, generator=generator, dtype=torch.float64) if with_state else None
    start = centre if with_state else torch.zeros(40, dtype=torch.float64)
    result, _ = CenteredClip(tau=5, iters=3).aggregate(x, centre)
    torch.testing.assert_close(result, reference_cclip(x, start, 5, 3))


def test_cclip_refuses_wrong_state_shape() -> None:
    with pytest.raises(ConfigError, match="state"):
        CenteredClip().aggregate(torch.zeros(3, 4), torch.zeros(5))
