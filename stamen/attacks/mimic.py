"""Mimic (Karimireddy, He & Jaggi, ICLR 2022, arXiv:2006.09365, the bucketing paper).

All Byzantine clients send a copy of one honest client's update, over-weighting that client
and under-representing the rest on non-iid data. The target is chosen in a warm-up of ``T``
rounds by estimating the direction ``z`` of largest variance of the honest updates
(``argmax_{|z|=1} sum_t sum_i <z, x_i^t - mu^t>^2``) with one online power-iteration step per
round, as in the paper:

* round 0: ``mu = mean_i x_i``; ``z = normalise(sum_i <x_i - mu, z_0> (x_i - mu))`` with
  ``z_0 ~ N(0, I)`` from the generator;
* round ``1 <= t < T``: ``mu <- (t mu + mean_i x_i) / (t + 1)``;
  ``z <- normalise((t z + normalise(sum_i <x_i - mu, z> (x_i - mu))) / (t + 1))``;
* during the warm-up the target is the client ``argmax_i <x_i, z>`` of the current round;
  from round ``T`` on that client stays the target and ``z`` is no longer updated.

The default ``T = 1`` is the authors' (``--mimic-warmup`` defaults to 1 in their code and
their published runs do not set it): the target is chosen in round 0 and kept.

The target is a client (its partition id, from ``craft``'s ``clients``), not a row: with partial
participation or a dropped reply the rows change from round to round, and the attackers
still copy the same client. In a round where the target sent nothing, they copy the honest
update farthest along ``z`` instead (the choice the warm-up would make), and keep their target.
Simulation only. The state is an explicit, immutable :class:`MimicState`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from stamen.attacks.base import OmniscientAttack, check_round, require
from stamen.attacks.registry import ATTACKS


@dataclass(frozen=True)
class MimicState:
    """The attack's state after ``round`` rounds: running mean, direction and target client."""

    round: int = 0
    mu: Tensor | None = None
    z: Tensor | None = None
    target: int | None = None


def _normalise(v: Tensor, fallback: Tensor) -> Tensor:
    norm = v.norm()
    return v / norm if norm > 0 else fallback


def _power_step(honest: Tensor, mu: Tensor, z: Tensor) -> Tensor:
    """``sum_i <x_i - mu, z> (x_i - mu)`` as two matrix-vector products."""
    centred = honest - mu
    return (centred @ z) @ centred


@ATTACKS.register("mimic")
@dataclass(frozen=True)
class Mimic(OmniscientAttack):
    """Copy one honest update, chosen after ``warmup`` rounds (simulation only).

    Parameters
    ----------
    warmup : int
        ``T``, the number of rounds in which the variance direction is estimated (>= 1).
    """

    warmup: int = 1

    def __post_init__(self) -> None:
        require(
            isinstance(self.warmup, int) and not isinstance(self.warmup, bool) and self.warmup >= 1,
            f"mimic: warmup must be an integer >= 1, got {self.warmup!r}",
        )

    def init_state(self) -> MimicState:
        return MimicState()

    def craft(
        self,
        honest: Tensor,
        num_byzantine: int,
        generator: torch.Generator,
        state: MimicState | None = None,
        clients: Sequence[int] | None = None,
    ) -> tuple[Tensor, MimicState]:
        check_round(honest, num_byzantine)
        clients = list(range(honest.shape[0])) if clients is None else [int(c) for c in clients]
        if len(clients) != honest.shape[0]:
            raise ValueError(f"mimic: {len(clients)} client ids for {honest.shape[0]} rows")
        state = state if state is not None else MimicState()
        t = state.round
        if t == 0:
            mu = honest.mean(dim=0)
            z0 = torch.randn(
                honest.shape[1], generator=generator, dtype=honest.dtype, device=generator.device
            )
            z0 = z0.to(honest.device) / z0.norm()
            z = _normalise(_power_step(honest, mu, z0), z0)
        elif t < self.warmup:
            mu = (t * state.mu + honest.mean(dim=0)) / (t + 1)
            step = _normalise(_power_step(honest, mu, state.z), state.z)
            z = _normalise((t * state.z + step) / (t + 1), state.z)
        else:
            mu, z = state.mu, state.z
        farthest = int(torch.argmax(honest @ z))
        target = clients[farthest] if t < self.warmup else state.target
        row = clients.index(target) if target in clients else farthest
        crafted = honest[row].expand(num_byzantine, -1).clone()
        return crafted, replace(state, round=t + 1, mu=mu, z=z, target=target)
