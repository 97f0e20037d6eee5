"""One generic Byzantine-robust strategy, configured by an aggregation pipeline.

Each round the replies are validated and flattened ONCE into an ``(n, d)`` tensor of updates
(client model minus global model); then, in order: the simulated omniscient attack (if any,
simulation only), the pre-aggregators and the rule of the pipeline (e.g.
``"bucketing(s=2) | cclip(tau=10, iters=3)"``), and the server step
``x <- x + server_lr * v`` with optional server momentum ``v <- mu v + aggregate``; the result
is unflattened once, with the median of the replies' integer arrays (``integer_arrays``). A
round whose replies are too few for the rule (Krum after drops) is
skipped (``RoundSkipped``): the model stays. The updates, rule state and momentum live on
``device`` (``device = "auto"``: the GPU when there is one); random draws stay on the CPU, so
that every device makes the same choices. Rules weigh clients equally, as in Karimireddy,
He & Jaggi (ICLR 2022, arXiv 2006.09365; ICML 2021, arXiv 2012.10333).

The server state (the round's model, rule state such as the CClip centre, momentum buffer,
attack state) lives in one ``RobustState``: ``configure_train`` records the model it sends,
against which the replies' updates are taken, and ``aggregate_train`` advances the rest. The
state, the server step and the simulated attack are shared with the secure strategy
(``server_step``, ``simulated_attack``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from stamen.algorithms.aggregation import Pipeline
from stamen.algorithms.aggregation.settings import pipeline_of
from stamen.devices import resolve_device
from stamen.errors import ConfigError, RoundSkipped
from stamen.experiment import Experiment
from stamen.messages.arrays import ArrayLayout
from stamen.messages.replies import answered, stack_updates
from stamen.seeding import ServerStream, server_generator
from stamen.strategies.registry import STRATEGIES
from stamen.strategies.server_step import (
    RobustState,
    ServerStep,
    client_metrics,
)
from stamen.strategies.simulated_attack import SimulatedAttack, simulated_attack_of


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
        self.server_step = ServerStep(server_lr, server_momentum)
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
        replies = answered(replies)
        layout = ArrayLayout.of(self.state.arrays)
        reference = layout.flatten(self.state.arrays)
        stacked = stack_updates(replies, reference, layout)
        if len(stacked.node_ids) == 0:
            return None, MetricRecord({"excluded": stacked.excluded})
        check_feasible(self.pipeline, len(stacked.node_ids))
        reference, updates = reference.to(self.device), stacked.updates.to(self.device)
        updates, attack_state = self._attack(server_round, updates, stacked.node_ids, layout)
        generator = server_generator(self.seed, server_round, ServerStream.AGGREGATION)
        aggregate, rule_state = self.pipeline.aggregate(updates, self.state.rule_state, generator)
        self.state = self.server_step.apply(
            self.state, aggregate, layout, reference, stacked.integers, rule_state, attack_state
        )
        metrics = client_metrics(self, replies, set(stacked.node_ids))
        metrics["excluded"] = stacked.excluded
        return self.state.arrays, metrics

    def _attack(
        self,
        server_round: int,
        updates: torch.Tensor,
        node_ids: tuple[int, ...],
        layout: ArrayLayout,
    ) -> tuple[torch.Tensor, Any]:
        """The updates with the Byzantine clients' rows crafted by the simulated attack, if
        any, and the attack's state."""
        if self.simulated_attack is None:
            return updates, None
        generator = server_generator(self.seed, server_round, ServerStream.ATTACK)
        return self.simulated_attack.apply(
            updates,
            node_ids,
            generator,
            self.state.attack_state,
            server_round=server_round,
            tensors=layout.float_tensors,
        )


def check_feasible(pipeline: Pipeline, num_replies: int) -> None:
    """``RoundSkipped`` when the rule cannot run on this round's replies (e.g. Krum with
    n <= 2f + 2 after drops): the round is skipped, not the run."""
    try:
        pipeline.rule.check(pipeline.num_rule_inputs(num_replies))
    except ConfigError as error:
        raise RoundSkipped(f"{num_replies} replies are too few: {error}") from None


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
