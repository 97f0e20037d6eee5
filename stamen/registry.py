"""A named registry of plugins (data sets, partitioners, models, ...).

One dict per kind with ``register`` and ``get``; unknown names fail with the list of known
ones (as opacus does). Third-party plugins are discovered through the entry-point group
``stamen.<kind>`` the first time a name is not found.
"""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from stamen.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to factories of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._plugins_loaded = False

    def register(self, name: str, item: T | None = None, *, force: bool = False):
        """Register ``item`` under ``name``; without ``item``, return a decorator."""

        def add(value: T) -> T:
            if name in self._items and not force:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = value
            return value

        return add if item is None else add(item)

    def get(self, name: str) -> T:
        """The item registered as ``name``; a ConfigError naming the known ones if none."""
        if name not in self._items and not self._plugins_loaded:
            self._load_plugins()
        if name not in self._items:
            raise ConfigError(
                f"unknown {self.kind} {name!r}: expected one of {', '.join(self.names())}"
            )
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def _load_plugins(self) -> None:
        self._plugins_loaded = True
        for entry in entry_points(group=f"stamen.{self.kind.replace(' ', '_')}s"):
            if entry.name not in self._items:
                self._items[entry.name] = entry.load()
