"""The two interfaces of Stamen's Byzantine attacks.

* :class:`ClientAttack` runs inside the ClientApp (also on real edge devices): it sees only
  its own labels and its own flattened update.
* :class:`OmniscientAttack` is for server-side simulation only: the colluding Byzantine
  clients see every honest update of the round and craft theirs together.

Updates are flattened vectors (``Tensor, shape (d,)``); honest updates of a round are stacked
on axis 0 (``Tensor, shape (h, d)``). An update is a model change (client model minus global
model), i.e. ``-lr`` times a gradient for one SGD step: attacks that their authors define on
gradients are written here in that mirrored form. Attacks never mutate their inputs and take their
randomness from an explicit ``torch.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from stamen.errors import ConfigError

CLIENT = "client"
OMNISCIENT = "omniscient"


class ClientAttack:
    """A client-side attack; both hooks default to the identity (an honest client)."""

    kind: ClassVar[str] = CLIENT

    def poison_labels(self, y: Tensor, num_classes: int) -> Tensor:
        """The labels the client trains on; ``y`` is an integer tensor of any shape."""
        return y

    def poison_update(self, update: Tensor, generator: torch.Generator) -> Tensor:
        """The update the client sends instead of ``update`` (``Tensor, shape (d,)``)."""
        return update


class OmniscientAttack:
    """Colluding Byzantine clients that know the honest updates (simulation only).

    By default all of them send one vector, :meth:`crafted`; attacks that keep a state or send
    different vectors override :meth:`craft` instead.
    """

    kind: ClassVar[str] = OMNISCIENT
    # the fewest honest updates :meth:`crafted` needs
    min_honest: ClassVar[int] = 1

    def init_state(self) -> Any:
        """The attack's state before the first round (``None`` for stateless attacks)."""
        return None

    def craft(
        self,
        honest: Tensor,
        num_byzantine: int,
        generator: torch.Generator,
        state: Any = None,
        clients: Sequence[int] | None = None,
    ) -> tuple[Tensor, Any]:
        """The Byzantine updates of this round and the attack's next state.

        Parameters
        ----------
        honest : Tensor, shape (h, d)
            The honest updates of the round (not modified).
        num_byzantine : int
            ``f``, the number of vectors to return; ``n = h + f`` clients in all.
        generator : torch.Generator
            The only source of randomness.
        state : object
            What the previous call returned (``init_state()`` in the first round).
        clients : sequence of int, optional
            Who sent each row of ``honest`` (partition ids), for attacks that follow one
            client across rounds; ``None``: row ``i`` is client ``i``.

        Returns
        -------
        (Tensor, shape (f, d), object)
        """
        check_round(honest, num_byzantine, self.min_honest)
        if num_byzantine == 0:
            return honest.new_empty((0, honest.shape[1])), state
        return self.crafted(honest, num_byzantine).expand(num_byzantine, -1).clone(), state

    def crafted(self, honest: Tensor, num_byzantine: int) -> Tensor:
        """The update (``Tensor, shape (d,)``, dtype of ``honest``) every Byzantine client sends."""
        raise NotImplementedError


def check_round(honest: Tensor, num_byzantine: int, min_honest: int = 1) -> None:
    """Fail with one line when ``honest`` is not ``(h, d)`` or ``num_byzantine`` is negative."""
    if honest.dim() != 2:
        raise ValueError(f"honest updates must have shape (h, d), got {tuple(honest.shape)}")
    if honest.shape[0] < min_honest:
        raise ValueError(
            f"this attack needs at least {min_honest} honest updates, got {honest.shape[0]}"
        )
    if num_byzantine < 0:
        raise ValueError(f"num_byzantine must be >= 0, got {num_byzantine}")


def require(condition: bool, message: str) -> None:
    """Raise a one-line ConfigError unless ``condition`` holds (for ``__post_init__``)."""
    if not condition:
        raise ConfigError(message)
