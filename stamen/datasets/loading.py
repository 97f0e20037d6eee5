"""The data-set registry and `load_dataset`, which turns a spec string into a loaded source.

A spec is a registered name (``mnist``), a name with keyword options
(``synthetic(alpha=0.5,beta=0.5,users=30)``) or a prefixed source (``hf:ylecun/mnist``,
``npz:/data/mine.npz``, ``idx:/data/fashion``). Prefixes are registered with their colon
(``"npz:"``), so an unknown spec fails with one line listing names and prefixes.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

from stamen.datasets.base import FederatedDataset
from stamen.errors import ConfigError
from stamen.registry import Registry, split_arguments, split_spec


@dataclass(frozen=True)
class Source:
    """A registered data source.

    Attributes
    ----------
    load : callable
        ``load(argument, seed) -> FederatedDataset``; ``argument`` is the text after a prefix,
        or the options inside the parentheses of a name (``""`` when there are none).
    seeded : bool
        Whether the data depend on the seed (generated data); if not, every seed shares one
        cached copy.
    takes_options : bool
        Whether a registered name accepts ``name(key=value,...)`` options.
    """

    load: Callable[[str, int], FederatedDataset]
    seeded: bool = False
    takes_options: bool = False


DATASETS: Registry[Source] = Registry("dataset")


def parse_spec(spec: str) -> tuple[str, str]:
    """Split a spec into its registry key and argument.

    ``"npz:/a.npz"`` -> ``("npz:", "/a.npz")``; ``"synthetic(alpha=1)"`` ->
    ``("synthetic", "alpha=1")``; ``"mnist"`` -> ``("mnist", "")``.
    """
    spec = spec.strip()
    prefix, colon, rest = spec.partition(":")
    if colon and re.fullmatch(r"[a-z]+", prefix):
        if not rest:
            raise ConfigError(f"dataset spec {spec!r} names no {prefix} source after the colon")
        return prefix + ":", rest
    parts = split_spec(spec)
    if parts is None:
        raise ConfigError(
            f"bad dataset spec {spec!r}: expected a name, name(key=value,...) or one of "
            "hf:<name>, npz:<path>, idx:<folder>"
        )
    return parts


def parse_options(options: str, allowed: dict[str, type]) -> dict[str, object]:
    """Parse ``"a=1,b=0.5"`` into typed values; keys must be in ``allowed``."""
    keys = ", ".join(allowed)
    parsed: dict[str, object] = {}
    for key, value in split_arguments(options, f"bad options {options!r} (keys: {keys})"):
        if key not in allowed:
            raise ConfigError(f"bad option {key!r}: expected key=value with key one of {keys}")
        try:
            parsed[key] = allowed[key](value)
        except ValueError:
            raise ConfigError(
                f"option {key}={value!r} is not a valid {allowed[key].__name__}"
            ) from None
    return parsed


def load_dataset(spec: str = "mnist", *, seed: int = 0) -> FederatedDataset:
    """Load a data source once per process.

    Parameters
    ----------
    spec : str
        A registered name (see ``DATASETS.names()``), ``name(key=value,...)`` for sources
        with options, or ``hf:<name>``, ``npz:<path>``, ``idx:<folder>``.
    seed : int
        Seed of generated sources (``synthetic``); ignored by the others.

    Raises
    ------
    ConfigError
        Unknown name or bad options.
    DatasetUnavailable
        The source cannot be had here; the message says what to install or do.
    """
    key, argument = parse_spec(spec)
    source = DATASETS.get(key)
    if argument and not key.endswith(":") and not source.takes_options:
        raise ConfigError(f"dataset {key!r} takes no options, got {argument!r}")
    return _load_cached(key, argument, seed if source.seeded else 0)


@functools.lru_cache(maxsize=16)
def _load_cached(key: str, argument: str, seed: int) -> FederatedDataset:
    return DATASETS.get(key).load(argument, seed)
