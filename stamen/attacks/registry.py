"""The attack registry and ``create_attack``, which turns a spec string into an attack.

Each attack registers itself in its own module (``@ATTACKS.register("name")``); importing
``stamen.attacks`` imports every module of the package, so a new attack is one new file.

A spec is a registered name (``"alie"``) or a name with keyword arguments of Python literals
(``"ipm(epsilon=0.5)"``, ``"gaussian(std=200, add=True)"``). Each registered factory makes an
object whose ``kind`` is ``"client"`` (a :class:`ClientAttack`, run in the ClientApp) or
``"omniscient"`` (an :class:`OmniscientAttack`, server-side simulation only). Third-party
attacks are found through the entry-point group ``stamen.attacks``.
"""

from __future__ import annotations

from collections.abc import Callable

from stamen.attacks.base import CLIENT, OMNISCIENT, ClientAttack, OmniscientAttack
from stamen.errors import ConfigError
from stamen.registry import Registry

Attack = ClientAttack | OmniscientAttack

ATTACKS: Registry[Callable[..., Attack]] = Registry("attack")


def create_attack(spec: str) -> Attack:
    """The attack named by ``spec``; a one-line ConfigError for unknown names or arguments."""
    attack = ATTACKS.create(spec)
    if getattr(attack, "kind", None) not in (CLIENT, OMNISCIENT):
        raise ConfigError(
            f"attack {spec!r} has kind {getattr(attack, 'kind', None)!r}: "
            f"expected {CLIENT!r} or {OMNISCIENT!r}"
        )
    return attack
