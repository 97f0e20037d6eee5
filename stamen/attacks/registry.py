"""The attack registry and ``create_attack``, which turns a spec string into an attack.

A spec is a registered name (``"alie"``) or a name with keyword arguments of Python literals
(``"ipm(epsilon=0.5)"``, ``"gaussian(std=200, add=True)"``). Each registered factory makes an
object whose ``kind`` is ``"client"`` (a :class:`ClientAttack`, run in the ClientApp) or
``"omniscient"`` (an :class:`OmniscientAttack`, server-side simulation only). Third-party
attacks are found through the entry-point group ``stamen.attacks``.
"""

from __future__ import annotations

from collections.abc import Callable

from stamen.attacks.alie import ALIE
from stamen.attacks.base import CLIENT, OMNISCIENT, ClientAttack, OmniscientAttack
from stamen.attacks.client_attacks import GaussianNoise, LabelFlip, Scaled, SignFlip, Zero
from stamen.attacks.ipm import IPM
from stamen.attacks.krum_attack import KrumAttack
from stamen.attacks.mimic import Mimic
from stamen.attacks.min_max import MinMax, MinSum
from stamen.errors import ConfigError
from stamen.registry import Registry

Attack = ClientAttack | OmniscientAttack

ATTACKS: Registry[Callable[..., Attack]] = Registry("attack")
for _name, _factory in {
    "label-flip": LabelFlip,
    "sign-flip": SignFlip,
    "gaussian": GaussianNoise,
    "zero": Zero,
    "scaled": Scaled,
    "alie": ALIE,
    "ipm": IPM,
    "mimic": Mimic,
    "min-max": MinMax,
    "min-sum": MinSum,
    "krum-attack": KrumAttack,
}.items():
    ATTACKS.register(_name, _factory)


def create_attack(spec: str) -> Attack:
    """The attack named by ``spec``; a one-line ConfigError for unknown names or arguments."""
    attack = ATTACKS.create(spec)
    if getattr(attack, "kind", None) not in (CLIENT, OMNISCIENT):
        raise ConfigError(
            f"attack {spec!r} has kind {getattr(attack, 'kind', None)!r}: "
            f"expected {CLIENT!r} or {OMNISCIENT!r}"
        )
    return attack
