"""The run configuration composed from the components' sections."""

from __future__ import annotations

import dataclasses

from stamen.experiment import Experiment, sections, strategy_names
from stamen.strategies import STRATEGIES


def test_no_key_is_declared_by_two_sections():
    """Dataclass inheritance would silently let one section's default win over another's."""
    owners: dict[str, str] = {}
    for section in sections():
        for name in section.__dataclass_fields__:
            if name in vars(section).get("__annotations__", {}):
                assert name not in owners, f"{name} in {owners.get(name)} and {section.__name__}"
                owners[name] = section.__name__
    assert set(owners) == {f.name for f in dataclasses.fields(Experiment)}


def test_every_declared_strategy_has_a_flower_strategy_and_back():
    assert set(strategy_names()) == set(STRATEGIES.names())


def test_strategy_defaults_name_declared_keys():
    keys = {f.name.replace("_", "-") for f in dataclasses.fields(Experiment)}
    for section in sections():
        for strategy, defaults in section.STRATEGY_DEFAULTS.items():
            assert strategy in section.STRATEGIES
            assert set(defaults) <= keys
