"""Composition of pre-aggregators and one rule from a string, checked before any round runs.

Syntax: zero or more pre-aggregators, then one aggregation rule, separated by ``|``; each stage
is ``name`` or ``name(key=value, ...)`` with numeric values, e.g.
``"bucketing(s=2) | cclip(tau=10, iters=3)"`` or ``"krum"``.

A rule's Byzantine count (``f``; ``b`` for trimmed-mean) defaults to the pipeline's
``num_byzantine`` carried through the pre-aggregators by their worst-case bound (bucketing:
``min(f, ceil(n/s))``; resampling: ``min(s f, n)``); Multi-Krum's ``m`` defaults to
``n' - f'``. An explicit ``f=`` / ``b=`` counts the rule's own inputs (after pre-aggregation)
and is used as given. Feasibility (e.g. n > 2f + 2 for Krum, n >= 4f + 3 for Bulyan, 2b < n
for trimmed-mean) is checked at parse time against those carried counts.
"""

from __future__ import annotations

import ast
import inspect
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from stamen.algorithms.aggregation.base import (
    AGGREGATORS,
    PRE_AGGREGATORS,
    AggregationRule,
    PreAggregator,
    RandomGenerator,
)
from stamen.errors import ConfigError
from stamen.registry import split_arguments, split_spec

_BYZANTINE_ARGUMENTS = ("f", "b")


@dataclass(frozen=True)
class Pipeline:
    """Pre-aggregators applied in order, then one rule; the state is the rule's state."""

    pre_aggregators: tuple[PreAggregator, ...]
    rule: AggregationRule

    def num_rule_inputs(self, num_inputs: int) -> int:
        """How many vectors reach the rule when ``num_inputs`` updates come in."""
        for stage in self.pre_aggregators:
            num_inputs = stage.num_outputs(num_inputs)
        return num_inputs

    def aggregate(
        self, updates: Tensor, state: Any = None, generator: RandomGenerator | None = None
    ) -> tuple[Tensor, Any]:
        """Aggregate ``updates`` (n, d) into (d,); return it and the rule's new state."""
        if self.pre_aggregators and generator is None:
            raise ConfigError("a pipeline with pre-aggregators needs an explicit generator")
        mixed = updates
        for stage in self.pre_aggregators:
            mixed = stage.apply(mixed, generator)
        return self.rule.aggregate(mixed, state)


def _parse_stage(text: str) -> tuple[str, dict[str, Any]]:
    parts = split_spec(text)
    if parts is None:
        raise ConfigError(
            f"cannot parse aggregation stage {text.strip()!r}: write name(key=value, ...)"
        )
    name, body = parts
    arguments: dict[str, Any] = {}
    for key, raw in split_arguments(body, name):
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name}: {key}={raw} must be a number")
        if key in arguments:
            raise ConfigError(f"{name}: argument {key!r} given twice")
        arguments[key] = value
    return name, arguments


def _build(registry: Any, kind: str, name: str, arguments: dict[str, Any]) -> Any:
    if name not in registry:
        other = PRE_AGGREGATORS if registry is AGGREGATORS else AGGREGATORS
        where = (
            f" ({name!r} is a{'n' if kind == 'pre-aggregator' else ''} "
            f"{'aggregator' if kind == 'pre-aggregator' else 'pre-aggregator'}; "
            "pre-aggregators come first, the aggregator last)"
            if name in other
            else ""
        )
        raise ConfigError(
            f"unknown {kind} {name!r}: expected one of {', '.join(registry.names())}{where}"
        )
    factory = registry.get(name)
    allowed = list(inspect.signature(factory).parameters)
    unknown = sorted(set(arguments) - set(allowed))
    if unknown:
        raise ConfigError(
            f"{name}: unexpected argument {', '.join(unknown)}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    try:
        return factory(**arguments)
    except TypeError as error:
        raise ConfigError(f"{name}: {error}; allowed arguments: {', '.join(allowed)}") from None


def parse_pipeline(text: str, num_clients: int, num_byzantine: int = 0) -> Pipeline:
    """Parse ``"pre | ... | rule"`` and check it can run on ``num_clients`` updates.

    Raises a one-line ConfigError naming the allowed stages/arguments, or the violated
    feasibility condition, before any training starts.
    """
    if not isinstance(num_clients, int) or num_clients < 1:
        raise ConfigError(f"num_clients must be an integer >= 1, got {num_clients!r}")
    if not isinstance(num_byzantine, int) or not 0 <= num_byzantine <= num_clients:
        raise ConfigError(
            f"num_byzantine must be an integer in [0, {num_clients}], got {num_byzantine!r}"
        )
    stages = [part for part in text.split("|")]
    if not text.strip() or any(not part.strip() for part in stages):
        raise ConfigError(
            f"empty stage in aggregation pipeline {text!r}: expected 'pre | ... | rule' with rule "
            f"one of {', '.join(AGGREGATORS.names())}"
        )
    n, f = num_clients, num_byzantine
    pre: list[PreAggregator] = []
    for part in stages[:-1]:
        name, arguments = _parse_stage(part)
        stage = _build(PRE_AGGREGATORS, "pre-aggregator", name, arguments)
        n, f = stage.num_outputs(n), stage.byzantine_after(n, f)
        pre.append(stage)
    name, arguments = _parse_stage(stages[-1])
    if name in AGGREGATORS:
        allowed = inspect.signature(AGGREGATORS.get(name)).parameters
        for key in _BYZANTINE_ARGUMENTS:
            if key in allowed:
                arguments.setdefault(key, f)
        if "m" in allowed and "m" not in arguments:
            arguments["m"] = max(1, n - arguments.get("f", f))
    rule = _build(AGGREGATORS, "aggregator", name, arguments)
    try:
        rule.check(n)
    except ConfigError as error:
        via = f" after {' | '.join(p.strip() for p in stages[:-1])}" if pre else ""
        raise ConfigError(
            f"{error} (from {num_clients} clients, {num_byzantine} Byzantine{via})"
        ) from None
    return Pipeline(tuple(pre), rule)
