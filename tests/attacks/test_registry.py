import importlib.metadata
from types import SimpleNamespace

import pytest

import stamen.registry
from stamen.attacks import (
    ATTACKS,
    IPM,
    ClientAttack,
    GaussianNoise,
    KrumAttack,
    MinMax,
    create_attack,
)
from stamen.errors import ConfigError
from stamen.registry import Registry, parse_spec


def test_names_and_kinds():
    assert ATTACKS.names() == sorted(
        [
            "label-flip",
            "sign-flip",
            "gaussian",
            "zero",
            "scaled",
            "alie",
            "ipm",
            "mimic",
            "min-max",
            "min-sum",
            "krum-attack",
        ]
    )
    client = {"label-flip", "sign-flip", "gaussian", "zero", "scaled"}
    for name in ATTACKS.names():
        kwargs = "(factor=2)" if name == "scaled" else ""
        assert create_attack(name + kwargs).kind == ("client" if name in client else "omniscient")


def test_parse_and_create():
    assert parse_spec("alie", "attack") == ("alie", {})
    assert parse_spec(" ipm( epsilon = 0.5 ) ", "attack") == ("ipm", {"epsilon": 0.5})
    assert create_attack("ipm(epsilon=0.5)") == IPM(epsilon=0.5)
    assert create_attack("gaussian(std=200)") == GaussianNoise(std=200)
    assert create_attack("min-max(perturbation='std')") == MinMax(perturbation="std")
    assert create_attack("krum-attack()") == KrumAttack()


def test_unknown_name_lists_the_allowed_ones():
    with pytest.raises(
        ConfigError, match="unknown attack 'nope': expected one of alie, gaussian"
    ) as err:
        create_attack("nope")
    assert "\n" not in str(err.value)


def test_unknown_argument_names_the_allowed_ones():
    with pytest.raises(
        ConfigError, match=r"unknown argument eps for attack 'ipm': expected epsilon"
    ):
        create_attack("ipm(eps=1)")
    with pytest.raises(ConfigError, match="expected no arguments"):
        create_attack("zero(x=1)")
    with pytest.raises(ConfigError, match="needs factor="):
        create_attack("scaled")


def test_arguments_split_at_top_level_commas_only():
    spec = "x(a=(1, 2), b='c,d)', c={'e': [3, 4]}, d='it\\'s, ok',)"
    assert parse_spec(spec, "thing") == (
        "x",
        {"a": (1, 2), "b": "c,d)", "c": {"e": [3, 4]}, "d": "it's, ok"},
    )


@pytest.mark.parametrize(
    "spec", ["ipm(0.5)", "ipm(epsilon=foo)", "ipm(epsilon=", "1abc", "ipm(**k)"]
)
def test_bad_specs(spec):
    with pytest.raises(ConfigError, match="bad attack spec"):
        create_attack(spec)


def test_bad_values():
    with pytest.raises(ConfigError, match="std"):
        create_attack("gaussian(std='x')")
    with pytest.raises(ConfigError, match="warmup"):
        create_attack("mimic(warmup=0)")


def test_group_name_is_stamen_attacks():
    seen = []

    def fake(group):
        seen.append(group)
        return []

    registry = Registry("attack")
    mp = pytest.MonkeyPatch()
    mp.setattr(stamen.registry, "entry_points", fake)
    try:
        with pytest.raises(ConfigError):
            registry.get("x")
    finally:
        mp.undo()
    assert seen == ["stamen.attacks"]


class PluginAttack(ClientAttack):
    def __init__(self, strength: float = 1.0) -> None:
        self.strength = strength


def test_plugin_discovery_through_entry_points(monkeypatch):
    entry = SimpleNamespace(name="my-plugin", load=lambda: PluginAttack)

    def fake(group):
        return [entry] if group == "stamen.attacks" else []

    # the registry module imports entry_points by name: patch it where it is used
    monkeypatch.setattr(stamen.registry, "entry_points", fake)
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    monkeypatch.setattr(ATTACKS, "_items", dict(ATTACKS._items))
    monkeypatch.setattr(ATTACKS, "_plugins_loaded", False)
    attack = create_attack("my-plugin(strength=3)")
    assert isinstance(attack, PluginAttack) and attack.strength == 3 and attack.kind == "client"
    with pytest.raises(ConfigError, match="expected strength"):
        create_attack("my-plugin(power=3)")


def test_plugin_without_kind_is_rejected(monkeypatch):
    entry = SimpleNamespace(name="kindless", load=lambda: lambda: object())
    monkeypatch.setattr(stamen.registry, "entry_points", lambda group: [entry])
    monkeypatch.setattr(ATTACKS, "_items", dict(ATTACKS._items))
    monkeypatch.setattr(ATTACKS, "_plugins_loaded", False)
    with pytest.raises(ConfigError, match="kind"):
        create_attack("kindless")


def test_every_attack_class_of_the_package_is_registered_by_its_own_module():
    """Importing ``stamen.attacks`` imports every module in it: an attack registers itself
    by being a file there, with no table elsewhere to edit."""
    import stamen.attacks as package
    from stamen.attacks.base import ClientAttack, OmniscientAttack

    def leaves(cls):
        for sub in cls.__subclasses__():
            yield from leaves(sub) if sub.__subclasses__() else [sub]

    attacks = {c for base in (ClientAttack, OmniscientAttack) for c in leaves(base)}
    ours = {c for c in attacks if c.__module__.startswith(package.__name__ + ".")}
    registered = {package.ATTACKS.get(name) for name in package.ATTACKS.names()}
    assert ours and ours <= registered
