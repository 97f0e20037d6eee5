"""The attack registry and ``create_attack``, which turns a spec string into an attack.

A spec is a registered name (``"alie"``) or a name with keyword arguments of Python literals
(``"ipm(epsilon=0.5)"``, ``"gaussian(std=200, add=True)"``). Each registered factory makes an
object whose ``kind`` is ``"client"`` (a :class:`ClientAttack`, run in the ClientApp) or
``"omniscient"`` (an :class:`OmniscientAttack`, server-side simulation only). Third-party
attacks are found through the entry-point group ``stamen.attacks``.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections.abc import Callable
from typing import Any

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

_SPEC = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)


def parse_attack_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name(key=value, ...)"`` into the name and its keyword arguments."""
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise ConfigError(f"bad attack spec {spec!r}: expected a name or name(key=value, ...)")
    name, arguments = match.group(1), match.group(2)
    if not arguments or not arguments.strip():
        return name, {}
    try:
        call = ast.parse(f"_({arguments})", mode="eval").body
        if not isinstance(call, ast.Call) or call.args or any(k.arg is None for k in call.keywords):
            raise ValueError
        return name, {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    except (SyntaxError, ValueError):
        raise ConfigError(
            f"bad attack spec {spec!r}: arguments must be key=value with literal values"
        ) from None


def create_attack(spec: str) -> Attack:
    """The attack named by ``spec``; a one-line ConfigError for unknown names or arguments."""
    name, kwargs = parse_attack_spec(spec)
    factory = ATTACKS.get(name)
    allowed = _parameters(factory)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown argument {', '.join(unknown)} for attack {name!r}: "
            f"expected {', '.join(allowed) if allowed else 'no arguments'}"
        )
    missing = [p for p, required in allowed.items() if required and p not in kwargs]
    if missing:
        raise ConfigError(f"attack {name!r} needs {', '.join(f'{p}=...' for p in missing)}")
    attack = factory(**kwargs)
    if getattr(attack, "kind", None) not in (CLIENT, OMNISCIENT):
        raise ConfigError(
            f"attack {name!r} has kind {getattr(attack, 'kind', None)!r}: "
            f"expected {CLIENT!r} or {OMNISCIENT!r}"
        )
    return attack


def _parameters(factory: Callable[..., Any]) -> dict[str, bool]:
    """Keyword parameters of ``factory``, each mapped to whether it is required."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    return {
        p.name: p.default is inspect.Parameter.empty
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    }
