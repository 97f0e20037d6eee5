"""The run-config keys of Mime and MimeLite: the base optimizer whose state the server
keeps, and how many mini-batches estimate a full-batch gradient (0: all)."""

from __future__ import annotations

from dataclasses import dataclass

from stamen.algorithms.mime.base_optimizers import create_base_optimizer
from stamen.errors import ConfigError
from stamen.sections import Section


@dataclass(frozen=True)
class MimeSettings(Section):
    base_optimizer: str = "sgdm(beta=0.9)"
    gradient_batches: int = 0

    NON_NEGATIVE = ("gradient_batches",)
    STRATEGIES = ("mime", "mimelite")

    def check(self) -> None:
        """The base optimizer parses; settings Mime does not use are refused, not ignored."""
        if self.strategy not in MimeSettings.STRATEGIES:
            return
        create_base_optimizer(self.base_optimizer)
        if self.weight_decay:
            raise ConfigError(f"weight-decay is not supported by {self.strategy}: set it to 0")
        if self.attack != "none":
            raise ConfigError(f"attack {self.attack!r} needs strategy=robust, not {self.strategy}")
