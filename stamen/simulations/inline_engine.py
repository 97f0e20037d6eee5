"""The in-process engine: a Flower ``Grid`` that hands each Message to the ClientApp directly.

No SuperLink, no Ray, no serialisation: the same ServerApp logic and the same ClientApp run
in one process, one message at a time. Each virtual node keeps its own ``Context`` (node
config ``partition-id``/``num-partitions``, persistent state) as on Flower's simulation
engine. A ClientApp that raises is answered with an error reply, as Flower's engine does,
so one failing client never stops the server. Any Flower ClientApp runs (``client_app``);
Stamen's is the default.
"""

from __future__ import annotations

import importlib
import time
import traceback
from collections.abc import Callable, Iterable
from logging import ERROR, WARNING
from uuid import uuid4

from flwr.app import Context, Error, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.common.logger import log
from flwr.serverapp import Grid
from flwr.supercore.run import Run
from flwr.supercore.task_identity import TaskIdentity

from stamen.clients.batched_round import PreparedRound, train_together
from stamen.devices import resolve_device
from stamen.errors import StamenError
from stamen.experiment import Experiment
from stamen.messages.keys import NUM_PARTITIONS, PARTITION_ID
from stamen.simulations.allocator import keep_freed_memory
from stamen.simulations.ordered_grid import STAMEN_CLIENT_APP
from stamen.simulations.results import RunRecorder, with_node_state
from stamen.simulations.run_batcher import RunBatcher, Trained
from stamen.simulations.server_app import run_experiment
from stamen.simulations.simulated_nodes import simulated_node_config


class InlineGrid(Grid):
    """Delivers messages to ``client_app`` in this process, for ``num_nodes`` virtual nodes."""

    def __init__(
        self,
        client_app: ClientApp,
        run_config: dict,
        num_nodes: int,
        run_id: int = 1,
        batch_clients: bool = False,
        train_round: Callable[[PreparedRound], Trained] = PreparedRound.train,
        node_config: dict[str, str] | None = None,
    ) -> None:
        self._client_app = client_app
        self.batch_clients = batch_clients
        self._train_round = train_round
        self._said: set[str] = set()
        # Messages take their sender and run from the process's task identity, which
        # Flower's runtimes set before a ServerApp starts; this engine is that runtime.
        TaskIdentity.task_id = run_id
        TaskIdentity.run_id = run_id
        TaskIdentity.node_id = SUPERLINK_NODE_ID
        self._run = Run.create_empty(run_id)
        self._run.override_config = dict(run_config)
        # Deterministic node IDs, after the server's own SUPERLINK_NODE_ID.
        self._contexts = {
            SUPERLINK_NODE_ID + 1 + partition_id: Context(
                run_id=run_id,
                node_id=SUPERLINK_NODE_ID + 1 + partition_id,
                node_config={
                    **(node_config or {}),
                    PARTITION_ID: partition_id,
                    NUM_PARTITIONS: num_nodes,
                },
                state=RecordDict(),
                run_config=dict(run_config),
            )
            for partition_id in range(num_nodes)
        }
        self._replies: dict[str, Message] = {}

    def set_run(self, run: Run) -> None:
        self._run = run

    @property
    def run(self) -> Run:
        return self._run

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def get_node_ids(self) -> list[int]:
        return list(self._contexts)

    def push_messages(self, messages: Iterable[Message]) -> list[str]:
        """Run the ClientApp on each message now; replies wait for ``pull_messages``."""
        messages = list(messages)
        for message in messages:
            _set_message_id(message)
        together = self._train_together(messages) if self.batch_clients else {}
        for message in messages:
            reply = together.get(message.metadata.message_id) or self._deliver(message)
            self._replies[message.metadata.message_id] = _stamped(reply)
        return [message.metadata.message_id for message in messages]

    def _train_together(self, messages: list[Message]) -> dict[str, Message]:
        """Replies to the round's train messages trained as one batch (``batched_round``),
        by message id; none when they cannot be (said once per reason)."""
        train = [m for m in messages if m.metadata.message_type.startswith(MessageType.TRAIN)]
        if len(train) < 2:
            return {}
        try:
            replies = train_together(train, self._contexts, self._train_round)
        except Exception as exc:  # noqa: BLE001  the one-by-one path reports client errors
            replies = f"a client failed to prepare ({exc!r})"
        if isinstance(replies, str):
            if replies not in self._said:
                log(WARNING, "Training clients one by one: %s", replies)
                self._said.add(replies)
            return {}
        return {m.metadata.message_id: r for m, r in zip(train, replies, strict=True)}

    def pull_messages(self, message_ids: Iterable[str]) -> list[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        return self.pull_messages(self.push_messages(messages))

    def _deliver(self, message: Message) -> Message:
        context = self._contexts.get(message.metadata.dst_node_id)
        try:
            if context is None:
                raise KeyError(f"no node {message.metadata.dst_node_id}")
            reply = self._client_app(message, context)
        except Exception as exc:  # noqa: BLE001  a failing client must not stop the server
            log(ERROR, "ClientApp failed on node %s: %s", message.metadata.dst_node_id, exc)
            log(ERROR, traceback.format_exc())
            error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=repr(exc))
            reply = Message(error, reply_to=message)
        return reply


def _stamped(reply: Message) -> Message:
    _set_message_id(reply)
    reply.metadata.delivered_at = str(time.time())
    return reply


def _set_message_id(message: Message) -> None:
    """Give ``message`` a fresh id. Metadata has no public setter for it; this is how flwr's
    own ``InMemoryGrid`` (flwr/superlink/grid/inmemory_grid.py) sets it."""
    message.metadata.__dict__["_message_id"] = uuid4().hex


def load_client_app(component: str) -> ClientApp:
    """The ClientApp named ``module:attribute``, as in a Flower App's ``pyproject.toml``."""
    module, _, attribute = component.partition(":")
    found = getattr(importlib.import_module(module), attribute, None)
    if not isinstance(found, ClientApp):
        raise StamenError(f"{component!r} names no ClientApp: expected 'module:attribute'")
    return found


def run_inline(
    experiment: Experiment,
    recorder: RunRecorder,
    batcher: RunBatcher | None = None,
    client_app: str = STAMEN_CLIENT_APP,
) -> dict:
    """Run ``experiment`` with all clients in this process; return the run summary. With a
    ``batcher`` (runs in threads of one process) its batched rounds train with other runs'.
    The process keeps the memory it frees (``keep_freed_memory``): every round reuses it.
    ``client_app`` (``module:attribute``) names the ClientApp; only Stamen's trains batched."""
    keep_freed_memory()
    experiment = with_node_state(experiment, recorder.out_dir)
    stamen_clients = client_app == STAMEN_CLIENT_APP
    batch = stamen_clients and (
        experiment.batch_clients == "on"
        or (experiment.batch_clients == "auto" and resolve_device(experiment.device).type == "cuda")
    )
    if batcher is not None and not batch:
        batcher.finished()  # it will hand in nothing: no one waits for it
        batcher = None
    grid = InlineGrid(
        load_client_app(client_app),
        experiment.to_run_config(),
        experiment.num_clients,
        batch_clients=batch,
        train_round=batcher.train if batcher else PreparedRound.train,
        node_config=simulated_node_config(experiment, recorder.out_dir),
    )
    try:
        return run_experiment(grid, experiment, recorder, "inline", stamen_clients)
    finally:
        if batcher is not None:
            batcher.finished()
