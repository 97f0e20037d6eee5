"""A named registry of plugins (data sets, partitioners, models, ...).

One dict per kind with ``register`` and ``get``; unknown names fail with the list of known
ones (as opacus does). Third-party plugins are discovered through the entry-point group
``stamen.<kind>`` the first time a name is not found. ``create("name(key=value, ...)")``
builds an item from a spec string with literal keyword arguments. ``split_spec`` and
``split_arguments`` are the one parser of such strings, also for aggregation pipelines and
data-set specs, whose callers read the values their own way.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from stamen.errors import ConfigError

_SPEC = re.compile(r"^\s*([A-Za-z_][\w\-]*)\s*(?:\((.*)\))?\s*$", re.DOTALL)

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

    def create(self, spec: str) -> Any:
        """Call the factory named by ``spec`` (``"name"`` or ``"name(key=value, ...)"``).

        Unknown names, unknown or missing arguments give a one-line ConfigError.
        """
        name, kwargs = parse_spec(spec, self.kind)
        factory = self.get(name)
        allowed = _parameters(factory)
        unknown = sorted(set(kwargs) - set(allowed))
        if unknown:
            raise ConfigError(
                f"unknown argument {', '.join(unknown)} for {self.kind} {name!r}: "
                f"expected {', '.join(allowed) if allowed else 'no arguments'}"
            )
        missing = [p for p, required in allowed.items() if required and p not in kwargs]
        if missing:
            raise ConfigError(
                f"{self.kind} {name!r} needs {', '.join(f'{p}=...' for p in missing)}"
            )
        return factory(**kwargs)

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


def split_spec(spec: object) -> tuple[str, str] | None:
    """``"name(body)"`` -> ``("name", "body")``, ``"name"`` -> ``("name", "")``; None for any
    other text (the callers word the error)."""
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    return None if match is None else (match.group(1), match.group(2) or "")


def split_arguments(body: str, context: str) -> list[tuple[str, str]]:
    """The items of ``"key=value, ..."`` as (key, value text) pairs in order, split at the commas
    outside brackets and quotes; empty items are skipped. Any other item: ConfigError
    ``"{context}: argument ... must be written key=value"``."""
    pieces, start, depth, quote, escaped = [], 0, 0, "", False
    for index, char in enumerate(body):
        if escaped:
            escaped = False
        elif quote:
            escaped = char == "\\"
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            pieces.append(body[start:index])
            start = index + 1
    pieces.append(body[start:])
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (piece.strip() for piece in pieces)):
        key, equals, value = (part.strip() for part in item.partition("="))
        if not (equals and key.isidentifier() and value):
            raise ConfigError(f"{context}: argument {item!r} must be written key=value")
        pairs.append((key, value))
    return pairs


def parse_spec(spec: str, kind: str) -> tuple[str, dict[str, Any]]:
    """Split ``"name(key=value, ...)"`` into the name and its keyword arguments (literals; a
    repeated key keeps its last value)."""
    parts = split_spec(spec)
    if parts is None:
        raise ConfigError(f"bad {kind} spec {spec!r}: expected a name or name(key=value, ...)")
    name, body = parts
    arguments: dict[str, Any] = {}
    for key, text in split_arguments(body, f"bad {kind} spec {spec!r}"):
        try:
            arguments[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            raise ConfigError(
                f"bad {kind} spec {spec!r}: {key}={text} must be a literal value"
            ) from None
    return name, arguments


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


def import_package_modules(package: str, path: Iterable[str]) -> None:
    """Import every module of ``package`` (its ``__name__`` and ``__path__``), so that each
    plugin registers itself by being a file there."""
    for module in pkgutil.iter_modules(path):
        importlib.import_module(f"{package}.{module.name}")
