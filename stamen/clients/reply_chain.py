"""A train reply's update built as a chain of small transforms, optax-style.

Each transform maps the flat update (model after local training minus model before, shape
(d,)) to a new one; ``chain`` applies them in order. A node's chain is, by what it is and
what its node config allows: its attack (a Byzantine node) or its worker momentum (an
honest one), then, for secure aggregation, clipping and local noise. The last step encodes
the result: the model ``start + update`` (``"arrays"``), or secret shares.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stamen.attacks import ClientAttack
from stamen.clients.round_memory import RoundMemory
from stamen.clients.secure_update import clip_and_noise
from stamen.clients.worker_momentum import apply_worker_momentum

Transform = Callable[[torch.Tensor], torch.Tensor]


def chain(*transforms: Transform | None) -> Transform:
    """The transforms applied in order (None entries are skipped)."""
    steps = [t for t in transforms if t is not None]

    def apply(update: torch.Tensor) -> torch.Tensor:
        for step in steps:
            update = step(update)
        return update

    return apply


def poisoned(attack: ClientAttack, seed: int) -> Transform:
    """A Byzantine node's update, crafted by its client-side attack."""
    return lambda update: attack.poison_update(update, torch.Generator().manual_seed(seed))


def worker_momentum(memory: RoundMemory, beta: float, server_round: int) -> Transform:
    """The node's momentum of its updates (Karimireddy et al., arXiv 2012.10333), kept in
    its ``memory``."""
    return lambda update: apply_worker_momentum(memory, update, beta, server_round)


def clipped_and_noised(clip: float, noise: float, generator: torch.Generator) -> Transform:
    """Clipped to L2 norm ``clip``, plus N(0, noise^2) from ``generator`` (a CSPRNG's)."""
    return lambda update: clip_and_noise(update, clip, noise, generator)
