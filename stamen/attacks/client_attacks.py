"""Client-side attacks: they run inside the ClientApp and see only the client's own data.

* ``label-flip``: train on ``C - 1 - y`` (bucketing paper's LF, Karimireddy, He & Jaggi,
  ICLR 2022, arXiv:2006.09365).
* ``sign-flip``: send ``-update`` (the bucketing paper's "bit flipping", BF).
* ``gaussian``: send Gaussian noise. By default the noise *replaces* the update,
  ``N(0, std^2 I)``, as in the "Gaussian attack" of Xie et al. (arXiv:1802.10116); with
  ``add=True`` it is added to the honest update instead. (The bucketing paper itself has no
  noise attack: its five are BF, LF, mimic, IPM and ALIE.)
* ``zero``: send the zero vector.
* ``scaled``: send ``factor * update`` (model replacement / boosting).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stamen.attacks.base import ClientAttack, require
from stamen.attacks.registry import ATTACKS


@ATTACKS.register("label-flip")
@dataclass(frozen=True)
class LabelFlip(ClientAttack):
    """Train on flipped labels ``y -> num_classes - 1 - y``."""

    def poison_labels(self, y: Tensor, num_classes: int) -> Tensor:
        if y.numel() and (int(y.min()) < 0 or int(y.max()) >= num_classes):
            raise ValueError(f"labels must lie in [0, {num_classes - 1}] to be flipped")
        return (num_classes - 1) - y


@ATTACKS.register("sign-flip")
@dataclass(frozen=True)
class SignFlip(ClientAttack):
    """Send ``-update`` (a.k.a. bit flipping)."""

    def poison_update(self, update: Tensor, generator: torch.Generator) -> Tensor:
        return -update


@ATTACKS.register("gaussian")
@dataclass(frozen=True)
class GaussianNoise(ClientAttack):
    """Send ``N(0, std^2 I)`` noise instead of the update, or ``update + noise`` if ``add``."""

    std: float = 1.0
    add: bool = False

    def __post_init__(self) -> None:
        require(
            isinstance(self.std, (int, float)) and self.std >= 0,
            f"gaussian: std must be a number >= 0, got {self.std!r}",
        )
        require(
            isinstance(self.add, bool), f"gaussian: add must be True or False, got {self.add!r}"
        )

    def poison_update(self, update: Tensor, generator: torch.Generator) -> Tensor:
        # Draw on the generator's device, then move: a CPU generator works for any update.
        noise = torch.randn(
            update.shape, generator=generator, dtype=update.dtype, device=generator.device
        )
        noise = self.std * noise.to(update.device)
        return update + noise if self.add else noise


@ATTACKS.register("zero")
@dataclass(frozen=True)
class Zero(ClientAttack):
    """Send the zero vector."""

    def poison_update(self, update: Tensor, generator: torch.Generator) -> Tensor:
        return torch.zeros_like(update)


@ATTACKS.register("scaled")
@dataclass(frozen=True)
class Scaled(ClientAttack):
    """Send ``factor * update``."""

    factor: float

    def __post_init__(self) -> None:
        require(
            isinstance(self.factor, (int, float)) and not isinstance(self.factor, bool),
            f"scaled: factor must be a number, got {self.factor!r}",
        )

    def poison_update(self, update: Tensor, generator: torch.Generator) -> Tensor:
        return self.factor * update
