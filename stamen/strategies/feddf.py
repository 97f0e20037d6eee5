"""FedDF: ensemble distillation for model fusion (Lin, Kong, Stich, Jaggi, arXiv 2006.07242).

The server keeps one student per architecture (``FedDFState``). A round:

1. ``configure_train`` samples clients as FedAvg does and sends each one the student of its
   architecture (``client-models``), naming it in the config (``"model"``).
2. ``aggregate_train`` groups the valid replies by architecture; each group's student starts
   from the example-weighted FedAvg of the group and is then distilled towards the ensemble of
   ALL received client models (``distillation.distill``) on the server's unlabeled data, with
   validation on its labeled held-back split (``distill_data``). As in the authors' code, the
   gradient norm is clipped at ``distill-clip-norm`` (5) and the group's new student is the
   best distilled checkpoint on validation, which may score below the FedAvg start;
   ``distill-keep-start = true`` lets the start compete too. A group without replies keeps
   its student. ``distill-steps = 0`` skips distillation: FedAvg within each group.

Malformed replies (wrong keys or shapes, NaN/Inf, no ``num-examples``) are excluded and
counted. The round's metrics give the distillation steps, time and validation accuracy
before and after it, per architecture when there are several (suffix ``/<architecture>``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from torch import nn

from stamen.algorithms.distill_data import ServerData, server_data
from stamen.algorithms.distillation import DistillSettings, distill
from stamen.devices import resolve_device
from stamen.experiment import Experiment
from stamen.federation import dataset_of, server_holdout
from stamen.messages.arrays import ArrayLayout
from stamen.messages.keys import ARRAYS, CONFIG
from stamen.messages.multi_model import join_models, split_models
from stamen.messages.replies import answered, stack_updates
from stamen.models import create_model
from stamen.models.assignment import client_architectures, parse_client_models
from stamen.seeding import ServerStream, server_seed
from stamen.strategies.registry import STRATEGIES


@dataclass(frozen=True)
class FedDFState:
    """What the server carries between rounds (checkpointable): one student per architecture."""

    students: dict[str, ArrayRecord]


class FedDFStrategy(FedAvg):
    """FedAvg's sampling; one model per architecture, fused by ensemble distillation."""

    def __init__(
        self,
        architectures: tuple[str, ...],
        partition_of: Callable[[int], int | None],
        build_model: Callable[[str], nn.Module],
        server: ServerData,
        settings: DistillSettings,
        device: torch.device,
        **sampling: Any,
    ) -> None:
        super().__init__(**sampling)
        self.architectures = architectures  # of each partition id
        self.names = list(dict.fromkeys(architectures))
        self.partition_of = partition_of
        self.build_model = build_model
        self.server = server
        self.settings = settings
        self.device = device
        self.state = FedDFState({})

    def architecture_of(self, node_id: int) -> str:
        partition = self.partition_of(node_id)
        return self.names[0] if partition is None else self.architectures[partition]

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        sampled = super().configure_train(server_round, arrays, config, grid)
        self.state = FedDFState(split_models(arrays, self.names))
        return self._per_architecture(sampled, config, MessageType.TRAIN)

    def configure_evaluate(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        sampled = super().configure_evaluate(server_round, arrays, config, grid)
        self.state = FedDFState(split_models(arrays, self.names))
        return self._per_architecture(sampled, config, MessageType.EVALUATE)

    def _per_architecture(
        self, sampled: Iterable[Message], config: ConfigRecord, message_type: str
    ) -> list[Message]:
        """The sampled nodes' messages again, each with its architecture's student."""
        node_ids = [message.metadata.dst_node_id for message in sampled]
        messages = []
        for name in self.names:
            nodes = [node for node in node_ids if self.architecture_of(node) == name]
            named = ConfigRecord({**config, "model": name})
            record = RecordDict({ARRAYS: self.state.students[name], CONFIG: named})
            messages += self._construct_messages(record, nodes, message_type)
        return messages

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = answered(replies)
        students, teachers, kept, excluded = {}, [], set(), 0
        for name in self.names:
            group = [r for r in replies if self.architecture_of(r.metadata.src_node_id) == name]
            start = self.state.students[name]
            layout = ArrayLayout.of(start)
            reference = layout.flatten(start)
            stacked = stack_updates(group, reference, layout, key=ARRAYS)
            excluded += stacked.excluded
            if not stacked.node_ids:
                continue
            weights = torch.tensor(stacked.num_examples)
            students[name] = layout.unflatten(
                reference + (weights / weights.sum()) @ stacked.updates, stacked.integers
            )
            teachers += [
                self._model(name, layout.unflatten(reference + u, stacked.integers))
                for u in stacked.updates
            ]
            kept.update(stacked.node_ids)
        if not teachers:
            return None, MetricRecord({"excluded": excluded})
        metrics = self.train_metrics_aggr_fn(
            [r.content for r in replies if r.metadata.src_node_id in kept], self.weighted_by_key
        )
        metrics["excluded"] = excluded
        if self.settings.steps > 0:
            for name in students:
                students[name], found = self._distill(
                    name, students[name], teachers, server_round, self.names.index(name)
                )
                metrics.update(found)
        students = {name: students.get(name, self.state.students[name]) for name in self.names}
        self.state = FedDFState(students)
        return join_models(students), metrics

    def _distill(
        self,
        name: str,
        start: ArrayRecord,
        teachers: list[nn.Module],
        server_round: int,
        index: int,
    ) -> tuple[ArrayRecord, dict[str, float]]:
        student = self._model(name, start)
        seed = server_seed(self.settings.seed, server_round, ServerStream.DISTILLATION, index)
        settings = replace(self.settings, seed=seed)
        unlabeled, validation = self.server.unlabeled, self.server.validation
        result = distill(student, teachers, unlabeled, validation, settings, self.device)
        suffix = "" if len(self.names) == 1 else f"/{name}"
        metrics = {
            f"distill-steps{suffix}": result.steps,
            f"distill-seconds{suffix}": result.seconds,
            f"validation-fedavg{suffix}": result.start_accuracy,
            f"validation-distilled{suffix}": result.best_accuracy,
            f"teachers{suffix}": result.teachers,
        }
        return ArrayRecord(student.cpu().state_dict()), metrics

    def _model(self, name: str, arrays: ArrayRecord) -> nn.Module:
        model = self.build_model(name)
        model.load_state_dict(arrays.to_torch_state_dict())
        return model


def distill_settings(experiment: Experiment) -> DistillSettings:
    return DistillSettings(
        steps=experiment.distill_steps,
        batch_size=experiment.distill_batch_size,
        lr=experiment.distill_lr,
        temperature=experiment.distill_temperature,
        eval_every=experiment.distill_eval_every,
        patience=experiment.distill_patience,
        drop_weak_teachers=experiment.distill_drop_weak,
        clip_norm=experiment.distill_clip_norm,
        keep_start=experiment.distill_keep_start,
        seed=experiment.seed,
    )


@STRATEGIES.register("feddf")
def feddf(experiment: Experiment, sampling: dict[str, Any], partition_of: Any) -> FedDFStrategy:
    data = dataset_of(experiment)
    shares = parse_client_models(experiment.client_models, experiment.model)
    server = server_data(
        data,
        server_holdout(experiment),
        experiment.distill_data,
        experiment.distill_validation,
        experiment.distill_samples,
        experiment.seed,
    )

    def build_model(name: str) -> nn.Module:
        return create_model(name, data.input_shape, data.num_classes, experiment.seed)

    return FedDFStrategy(
        client_architectures(shares, experiment.num_clients),
        partition_of,
        build_model,
        server,
        distill_settings(experiment),
        resolve_device(experiment.device),
        **sampling,
    )
