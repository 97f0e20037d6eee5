"""Pruning methods as the server applies them round by round, written as a spec string.

- ``dpf(sparsity, every=1, until=0.75, structured=False)``: Dynamic Pruning with Feedback
  (Lin, Stich, Barba, Dmitriev & Jaggi, ICLR 2020, arXiv 2006.07253). The server keeps dense
  weights ``w`` and sends the pruned model ``m * w``; the round's update, computed at the
  pruned model, is applied to the dense weights (the feedback: a pruned weight keeps learning
  and can come back); the mask is recomputed from ``w`` by magnitude every ``every`` rounds,
  at the sparsity of the cubic schedule ``s_t = s (1 - (1 - t/E)^3)`` (Zhu & Gupta), which
  reaches the target at round ``E = until * T`` of the run's T rounds; the mask then stays
  fixed for the rest of the run (Zhu & Gupta: "once the model achieves the target sparsity,
  the weight masks are no longer updated"). Reimplementations of DPF end the ramp at the
  second learning-rate decay, 75% of their CIFAR schedule: hence ``until=0.75``.
- ``gradual(sparsity, every=1, until=0.75, structured=False)``: gradual magnitude pruning on
  the same schedule without feedback (Zhu & Gupta, arXiv 1710.01878): pruned weights are zero
  and stay so, the update reaches the kept ones only.
- ``one-shot(sparsity, at=0.5, structured=False)``: dense training until round ``at * T``,
  then one magnitude pruning to ``sparsity`` and training of the kept weights to the end.

The model the server holds, evaluates and saves is the pruned ``m * w``: no retraining.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

from stamen.errors import ConfigError
from stamen.registry import Registry

PRUNING: Registry[type] = Registry("pruning method")


@dataclass(frozen=True)
class Pruning(ABC):
    """A pruning method: when the mask changes and to which sparsity, and whether the update
    reaches the pruned weights (feedback)."""

    sparsity: float
    structured: bool = False
    feedback: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if isinstance(self.sparsity, bool) or not isinstance(self.sparsity, int | float):
            raise ConfigError(f"pruning sparsity must be a number in [0, 1), got {self.sparsity!r}")
        if not 0 <= self.sparsity < 1:
            raise ConfigError(f"pruning sparsity must be in [0, 1), got {self.sparsity}")
        if not isinstance(self.structured, bool):
            raise ConfigError(f"pruning structured must be true or false, got {self.structured!r}")
        self.check()

    def check(self) -> None:  # noqa: B027  (optional)
        """Raise a one-line ConfigError for invalid arguments of the method."""

    @abstractmethod
    def target(self, server_round: int, num_rounds: int) -> float | None:
        """The sparsity of the mask to compute after ``server_round``, or None to keep it."""


def cubic(sparsity: float, server_round: int, end: int) -> float:
    """``s (1 - (1 - t/E)^3)``: fast at first, flat towards round ``E`` (Zhu & Gupta)."""
    return sparsity * (1 - (1 - min(server_round / end, 1.0)) ** 3)


@dataclass(frozen=True)
class _Scheduled(Pruning):
    every: int = 1
    until: float = 0.75

    def check(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"pruning every must be an integer >= 1, got {self.every!r}")
        if isinstance(self.until, bool) or not isinstance(self.until, int | float):
            raise ConfigError(f"pruning until must be a number in (0, 1], got {self.until!r}")
        if not 0 < self.until <= 1:
            raise ConfigError(f"pruning until must be in (0, 1], got {self.until}")

    def end(self, num_rounds: int) -> int:
        """The round at which the ramp reaches the target sparsity: ``until * T``, rounded
        down."""
        return max(int(self.until * num_rounds), 1)

    def target(self, server_round: int, num_rounds: int) -> float | None:
        end = self.end(num_rounds)
        if server_round > end or (server_round % self.every and server_round != end):
            return None
        return cubic(self.sparsity, server_round, end)


@PRUNING.register("dpf")
@dataclass(frozen=True)
class DynamicPruningWithFeedback(_Scheduled):
    feedback: ClassVar[bool] = True


@PRUNING.register("gradual")
@dataclass(frozen=True)
class GradualMagnitude(_Scheduled):
    pass


@PRUNING.register("one-shot")
@dataclass(frozen=True)
class OneShot(Pruning):
    at: float = 0.5

    def check(self) -> None:
        if (
            isinstance(self.at, bool)
            or not isinstance(self.at, int | float)
            or not 0 <= self.at <= 1
        ):
            raise ConfigError(
                f"one-shot at must be a fraction of the rounds in [0, 1], got {self.at!r}"
            )

    def target(self, server_round: int, num_rounds: int) -> float | None:
        return self.sparsity if server_round == max(round(self.at * num_rounds), 1) else None


def parse_pruning(spec: str) -> Any:
    """The pruning method of a spec (None for ``"none"``)."""
    if spec.strip() == "none":
        return None
    return PRUNING.create(spec)
