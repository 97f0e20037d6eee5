"""One generic Byzantine-robust strategy, configured by an aggregation pipeline.

Each round the replies are validated and flattened ONCE into an ``(n, d)`` tensor of updates
(client model minus global model); then, in order: the simulated omniscient attack (if any,
simulation only), the pre-aggregators and the rule of the pipeline (e.g.
``"bucketing(s=2) | cclip(tau=10, iters=3)"``), and the server step
``x <- x + server_lr * v`` with optional server momentum ``v <- mu v + aggregate``; the result
is unflattened once. A round whose replies are too few for the rule (Krum after drops) is
skipped (``RoundSkipped``): the model stays. The updates, rule state and momentum live on
``device`` (``device = "auto"``: the GPU when there is one); random draws stay on the CPU, so
that every device makes the same choices. Rules weigh clients equally, as in Karimireddy,
He & Jaggi (ICLR 2022, arXiv 2006.09365; ICML 2021, arXiv 2012.10333).

The server state (the round's model, rule state such as the CClip centre, momentum buffer,
attack state) lives in one ``RobustState``: ``configure_train`` records the model it sends,
against which the replies' updates are taken, and ``aggregate_train`` advances the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from stamen.algorithms.aggregation import Pipeline
from stamen.algorithms.aggregation.settings import pipeline_of
from stamen.attacks import OMNISCIENT, OmniscientAttack, byzantine_clients, create_attack
from stamen.devices import resolve_device
from stamen.errors import ConfigError, RoundSkipped
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout
from stamen.messages.replies import stack_updates
from stamen.strategies.registry import STRATEGIES


@dataclass(frozen=True)
class RobustState:
    """Everything the server carries from one round to the next."""

    arrays: ArrayRecord | None = None
    rule_state: Any = None
    momentum: torch.Tensor | None = None
    attack_state: Any = None


@dataclass(frozen=True)
class SimulatedAttack:
    """An omniscient attack and which partitions it controls (simulation only)."""

    attack: OmniscientAttack
    byzantine: frozenset[int]
    partition_of: Callable[[int], int | None]


class RobustStrategy(FedAvg):
    """FedAvg's sampling and messages with a robust aggregation pipeline and server step."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        seed: int,
        server_lr: float = 1.0,
        server_momentum: float = 0.0,
        simulated_attack: SimulatedAttack | None = None,
        device: torch.device | str = "cpu",
        **sampling: Any,
    ) -> None:
        super().__init__(**sampling)
        self.pipeline = pipeline
        self.seed = seed
        self.server_lr = server_lr
        self.server_momentum = server_momentum
        self.simulated_attack = simulated_attack
        self.device = torch.device(device)
        self.state = RobustState()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """FedAvg's sampling; ``arrays`` becomes the round's reference for the updates."""
        self.state = replace(self.state, arrays=arrays)
        return super().configure_train(server_round, arrays, config, grid)

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = list(replies)
        layout = ArrayLayout.of(self.state.arrays)
        reference = layout.flatten(self.state.arrays)
        stacked = stack_updates(replies, reference, layout)
        if len(stacked.node_ids) == 0:
            return None, MetricRecord({"excluded": stacked.excluded})
        check_feasible(self.pipeline, len(stacked.node_ids))
        reference, updates = reference.to(self.device), stacked.updates.to(self.device)
        updates, attack_state = self._attack(server_round, updates, stacked.node_ids)
        aggregate, rule_state = self.pipeline.aggregate(
            updates, self.state.rule_state, self._generator(server_round, stream=1)
        )
        arrays = self._step(aggregate, layout, reference, rule_state, attack_state)
        metrics = self._client_metrics(replies, set(stacked.node_ids))
        metrics["excluded"] = stacked.excluded
        return arrays, metrics

    def _step(
        self,
        aggregate: torch.Tensor,
        layout: ArrayLayout,
        reference: torch.Tensor,
        rule_state: Any,
        attack_state: Any,
    ) -> ArrayRecord:
        """The server step ``x + server_lr * v`` (with server momentum); advances the state."""
        step = aggregate
        if self.server_momentum:
            previous = self.state.momentum
            step = aggregate if previous is None else self.server_momentum * previous + aggregate
        arrays = layout.unflatten(reference + self.server_lr * step)
        self.state = replace(
            self.state,
            arrays=arrays,
            rule_state=rule_state,
            momentum=step if self.server_momentum else None,
            attack_state=attack_state,
        )
        return arrays

    def _client_metrics(self, replies: list[Message], valid: set[int]) -> MetricRecord:
        kept = [r.content for r in replies if not r.has_error() and r.metadata.src_node_id in valid]
        return self.train_metrics_aggr_fn(kept, self.weighted_by_key)

    def _attack(
        self, server_round: int, updates: torch.Tensor, node_ids: tuple[int, ...]
    ) -> tuple[torch.Tensor, Any]:
        """Replace the Byzantine clients' updates (rows of ``updates``, in place) by the
        simulated attack's (simulation only)."""
        simulated = self.simulated_attack
        if simulated is None:
            return updates, None
        partitions = [simulated.partition_of(n) for n in node_ids]
        byzantine = [p in simulated.byzantine for p in partitions]
        mask = torch.tensor(byzantine, device=updates.device)
        num_byzantine = int(mask.sum())
        if num_byzantine == 0 or num_byzantine == len(node_ids):
            return updates, self.state.attack_state
        honest = [
            p if p is not None else n for p, n, b in zip(partitions, node_ids, byzantine) if not b
        ]
        try:
            crafted, attack_state = simulated.attack.craft(
                updates[~mask],
                num_byzantine,
                self._generator(server_round, stream=0),
                self.state.attack_state,
                clients=honest,
            )
        except ValueError as error:  # e.g. ALIE with one honest reply left after drops
            raise RoundSkipped(f"the simulated attack cannot run on this round: {error}") from None
        updates[mask] = crafted.to(updates.dtype)  # in place: the rows are this round's own
        return updates, attack_state

    def _generator(self, server_round: int, stream: int) -> torch.Generator:
        return round_generator(self.seed, server_round, stream)


def check_feasible(pipeline: Pipeline, num_replies: int) -> None:
    """``RoundSkipped`` when the rule cannot run on this round's replies (e.g. Krum with
    n <= 2f + 2 after drops): the round is skipped, not the run."""
    try:
        pipeline.rule.check(pipeline.num_rule_inputs(num_replies))
    except ConfigError as error:
        raise RoundSkipped(f"{num_replies} replies are too few: {error}") from None


def round_generator(seed: int, server_round: int, stream: int) -> torch.Generator:
    """The server's generator of one round: stream 0 the simulated attack, 1 aggregation."""
    state = np.random.SeedSequence([seed, server_round, stream]).generate_state(1)[0]
    return torch.Generator().manual_seed(int(state))


@STRATEGIES.register("robust")
def robust(
    experiment: Experiment, sampling: dict[str, Any], partition_of: Callable[[int], int | None]
) -> RobustStrategy:
    """``strategy = "robust"``: the ``aggregator`` pipeline, server step, simulated attack."""
    return RobustStrategy(
        pipeline_of(experiment),
        seed=experiment.seed,
        server_lr=experiment.server_lr,
        server_momentum=experiment.server_momentum,
        simulated_attack=simulated_attack_of(experiment, partition_of),
        device=resolve_device(experiment.device),
        **sampling,
    )


def simulated_attack_of(
    experiment: Experiment, partition_of: Callable[[int], int | None]
) -> SimulatedAttack | None:
    """The run's omniscient attack and its Byzantine partitions, if it has one."""
    attack = None if experiment.attack == "none" else create_attack(experiment.attack)
    if attack is None or attack.kind != OMNISCIENT:
        return None
    byzantine = byzantine_clients(experiment.num_clients, experiment.num_byzantine, experiment.seed)
    return SimulatedAttack(attack, frozenset(int(p) for p in byzantine), partition_of)
