"""Min-max and min-sum (Shejwalkar & Houmansadr, NDSS 2021, "Manipulating the Byzantine").

Aggregation-agnostic attacks: every Byzantine client sends ``m = mean + gamma * p`` with ``mean``
the honest mean and ``p`` a perturbation direction. The authors write them on gradients,
``mu - gamma * dev``; Stamen's updates are model changes (``-lr`` times a gradient), so in
update space the directions are:

* ``unit``: ``-mean / |mean|`` (the paper's inverse unit vector; the same in both spaces),
* ``std``: ``+std`` (per-coordinate sample standard deviation of the honest updates: the
  authors' ``-std`` of gradients, mirrored),
* ``sign``: ``-sign(mean)`` (the same in both spaces),

and ``gamma`` as large as the attack's constraint allows:

* min-max: ``max_i |m - x_i|^2 <= max_{i,j} |x_i - x_j|^2`` (no farther from any honest update
  than the two farthest honest ones are from each other);
* min-sum: ``sum_i |m - x_i|^2 <= min_i sum_j |x_i - x_j|^2``, the authors' threshold
  (``torch.min(scores)`` in their ``our_attack_score``): the crafted update's score is no
  larger than the best honest score, so score-based rules (Krum) rank it first.
  ``min-sum(threshold="max")`` bounds it by the worst honest score instead, a looser and
  stronger-moving variant that is no longer guaranteed to beat every honest score.

``gamma`` is found as in the paper by a halving search, started at ``gamma_init`` (the paper's
10) and doubled while feasible so the search never starts below the answer. ``gamma = 0``
(the mean) always satisfies both constraints. Distances along the line are quadratics in
``gamma``, so each test costs O(h). Simulation only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from stamen.algorithms.aggregation.primitives import squared_distances
from stamen.attacks.base import OmniscientAttack, require
from stamen.attacks.registry import ATTACKS

PERTURBATIONS = ("unit", "std", "sign")
_HALVINGS = 60
_MAX_DOUBLINGS = 60


def perturbation(honest: Tensor, kind: str) -> Tensor:
    """The direction ``p`` (``Tensor, shape (d,)``) of kind ``unit``, ``std`` or ``sign``."""
    mean = honest.mean(dim=0)
    if kind == "unit":
        norm = mean.norm()
        return -mean / norm if norm > 0 else torch.zeros_like(mean)
    if kind == "std":
        return honest.std(dim=0)
    if kind == "sign":
        return -torch.sign(mean)
    raise ValueError(f"unknown perturbation {kind!r}: expected one of {', '.join(PERTURBATIONS)}")


def largest_feasible_gamma(distances, threshold: float, gamma_init: float) -> float:
    """Largest ``gamma >= 0`` (to the search's precision) with ``distances(gamma) <= threshold``."""
    lo, hi = 0.0, gamma_init
    for _ in range(_MAX_DOUBLINGS):
        if distances(hi) > threshold:
            break
        lo, hi = hi, 2.0 * hi
    else:
        return lo
    for _ in range(_HALVINGS):
        mid = 0.5 * (lo + hi)
        if distances(mid) <= threshold:
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class _DistanceBounded(OmniscientAttack):
    perturbation: str = "unit"
    gamma_init: float = 10.0

    name: ClassVar[str] = ""
    min_honest: ClassVar[int] = 2

    def __post_init__(self) -> None:
        require(
            self.perturbation in PERTURBATIONS,
            f"{self.name}: perturbation must be one of {', '.join(PERTURBATIONS)}, "
            f"got {self.perturbation!r}",
        )
        require(
            isinstance(self.gamma_init, (int, float)) and self.gamma_init > 0,
            f"{self.name}: gamma_init must be a number > 0, got {self.gamma_init!r}",
        )

    def _reduce(self, sq: Tensor) -> Tensor:
        raise NotImplementedError

    def _threshold(self, pairwise: Tensor) -> Tensor:
        raise NotImplementedError

    def crafted(self, honest: Tensor, num_byzantine: int) -> Tensor:
        x = honest.double()
        mean = x.mean(dim=0)
        p = perturbation(x, self.perturbation)
        # |mean + g p - x_i|^2 = a_i + g b_i + g^2 c
        diff = mean - x
        a, b, c = (diff * diff).sum(dim=1), 2.0 * (diff @ p), (p * p).sum()
        threshold = float(self._threshold(squared_distances(x)))
        gamma = 0.0
        if c > 0:
            gamma = largest_feasible_gamma(
                lambda g: float(self._reduce(a + g * b + g * g * c)),
                threshold,
                float(self.gamma_init),
            )
        return (mean + gamma * p).to(honest.dtype)


@ATTACKS.register("min-max")
@dataclass(frozen=True)
class MinMax(_DistanceBounded):
    """``mean + gamma p`` no farther from any honest update than the honest diameter."""

    name: ClassVar[str] = "min-max"

    def _reduce(self, sq: Tensor) -> Tensor:
        return sq.max()

    def _threshold(self, pairwise: Tensor) -> Tensor:
        return pairwise.max()


THRESHOLDS = ("min", "max")


@ATTACKS.register("min-sum")
@dataclass(frozen=True)
class MinSum(_DistanceBounded):
    """``mean + gamma p`` whose summed squared distance to the honest updates stays below the
    best honest sum (``threshold = "min"``, the authors') or the worst (``"max"``)."""

    threshold: str = "min"

    name: ClassVar[str] = "min-sum"

    def __post_init__(self) -> None:
        super().__post_init__()
        require(
            self.threshold in THRESHOLDS,
            f"min-sum: threshold must be one of {', '.join(THRESHOLDS)}, got {self.threshold!r}",
        )

    def _reduce(self, sq: Tensor) -> Tensor:
        return sq.sum()

    def _threshold(self, pairwise: Tensor) -> Tensor:
        scores = pairwise.sum(dim=1)
        return scores.min() if self.threshold == "min" else scores.max()
