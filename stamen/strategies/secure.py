"""Secure two-server Byzantine-robust aggregation (He, Karimireddy, Jaggi, arXiv 2006.04747).

The ServerApp is S1. Clients reply with secret shares of their update
(``clients/secure_update.py``), never the update. S1 hands the shares to the secure backend
(``stamen.secure``: S2 and the dealer are their own processes), which returns only the
weighted aggregate chosen by the distance-based rule (e.g. ``"bucketing(s=2) | krum"``) run
at S2. The server state, server step (server momentum) and simulated attack are those of the
robust strategy (``server_step``, ``simulated_attack``).

If S2 or the dealer cannot be reached or fails, the round fails with a logged error and
the model is not updated. Malformed replies (the reply checks of ``messages/replies.py``,
then the shares' form) are excluded and counted (``excluded``); clients whose shares fail
the validity check are counted as ``invalid``. A round with too few clients for the rule,
before or after the validity check, or with no valid client, is skipped (``RoundSkipped``):
never aggregated to zero. With an omniscient attack (simulation only) honest clients whose
node allows it (``simulation-oracle``) also send their plaintext update, from which S1
crafts the attackers' updates and shares them on their behalf.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from stamen.algorithms.aggregation import parse_pipeline
from stamen.errors import ConfigError, RoundSkipped
from stamen.experiment import Experiment
from stamen.federation import dataset_of
from stamen.messages.arrays import ArrayLayout
from stamen.messages.keys import (
    ORACLE_RECORD,
    SECURE_CLIP,
    SECURE_CONTEXT,
    SECURE_KEY,
    SECURE_KEY_CERTIFICATE,
    SECURE_KEY_SIGNATURE,
    SECURE_NOISE,
    SECURE_ORACLE,
    SECURE_RECORD,
    SECURE_TRAIN,
)
from stamen.messages.replies import (
    Refused,
    answered,
    arrays_of,
    config_of,
    examples_of,
    vector_of,
)
from stamen.models import create_model
from stamen.secure.backend import ClientShares, SecureBackend, SecureBackendError
from stamen.secure.envelope import envelope_context, seal
from stamen.secure.prg import SEED_BYTES
from stamen.secure.ring import encode
from stamen.secure.sharing import share
from stamen.secure.validity import (
    HONEST_PASS,
    honest_pass_probability,
    largest_bits,
    largest_noise,
    wrap_free,
)
from stamen.seeding import ServerStream, server_generator, server_seed
from stamen.strategies.registry import STRATEGIES
from stamen.strategies.server_step import (
    RobustState,
    ServerStep,
    client_metrics,
)
from stamen.strategies.simulated_attack import SimulatedAttack, simulated_attack_of

log = logging.getLogger(__name__)


class SecureStrategy(FedAvg):
    """FedAvg's sampling; aggregation by the secure backend; the robust server step."""

    def __init__(
        self,
        backend: Callable[[], SecureBackend],
        rule: str,
        *,
        num_byzantine: int,
        bits: int,
        clip: float,
        noise: float,
        seed: int,
        server_lr: float = 1.0,
        server_momentum: float = 0.0,
        simulated_attack: SimulatedAttack | None = None,
        **sampling: Any,
    ) -> None:
        super().__init__(**sampling)
        self.seed = seed
        self.server_step = ServerStep(server_lr, server_momentum)
        self.simulated_attack = simulated_attack
        self.state = RobustState()
        self.connect = backend
        self.backend: SecureBackend | None = None
        self.rule, self.num_byzantine, self.bits = rule, num_byzantine, bits
        self.clip, self.noise = clip, noise
        self.run_token = secrets.token_hex(8)  # binds envelopes to this run

    def context(self, server_round: int) -> str:
        return f"run={self.run_token};round={server_round}"

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        try:
            self.backend = self.backend or self.connect()
        except SecureBackendError as exc:
            log.error("round %d not run: %s", server_round, exc)
            return []
        s2_key = self.backend.s2_key
        secure = {
            SECURE_KEY: s2_key.public_key,
            SECURE_KEY_SIGNATURE: s2_key.signature,
            SECURE_KEY_CERTIFICATE: s2_key.certificate,
            SECURE_CONTEXT: self.context(server_round),
            SECURE_CLIP: self.clip,
            SECURE_NOISE: self.noise,
            SECURE_ORACLE: self.simulated_attack is not None,
        }
        self.state = replace(self.state, arrays=arrays)  # the reference of the replies' updates
        sampled = super().configure_train(
            server_round, arrays, ConfigRecord({**config, **secure}), grid
        )
        return [Message(m.content, m.metadata.dst_node_id, SECURE_TRAIN) for m in sampled]

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        replies = answered(replies)
        if self.backend is None:  # S2 or the dealer was unreachable: no round was run
            return None, MetricRecord({"secure-failed": 1})
        layout = ArrayLayout.of(self.state.arrays)
        reference = layout.flatten(self.state.arrays)
        shares, oracle, excluded = [], [], 0
        for reply in replies:
            found = _client_shares(reply, layout.size if self.simulated_attack else None)
            if found is None:
                excluded += 1
            else:
                shares.append(found[0])
                oracle.append(found[1])
        if not shares:
            return None, MetricRecord({"excluded": excluded})
        check_feasible(self.rule, len(shares), self.num_byzantine)
        shares, attack_state = self._simulated_shares(server_round, shares, oracle, layout)
        rule_seed = server_seed(self.seed, server_round, ServerStream.AGGREGATION)
        try:
            result = self.backend.aggregate(
                self.context(server_round),
                shares,
                layout.size,
                self.bits,
                self.rule,
                self.num_byzantine,
                rule_seed,
            )
        except SecureBackendError as exc:
            log.error("round %d failed, the model is not updated: %s", server_round, exc)
            self.close()  # the channels may be mid-protocol: reconnect next round
            return None, MetricRecord({"excluded": excluded, "secure-failed": 1})
        valid = int(result.valid.sum())
        if valid == 0:
            raise RoundSkipped(
                f"no client's shares passed the validity check ({len(shares)} checked): "
                "nothing to aggregate"
            )
        check_feasible(self.rule, valid, self.num_byzantine)
        aggregate = torch.from_numpy(result.aggregate).to(reference.dtype)
        self.state = self.server_step.apply(  # no model in the replies: the integers stay
            self.state, aggregate, layout, reference, self.state.arrays, None, attack_state
        )
        metrics = client_metrics(self, replies, {s.client for s in shares})
        metrics.update({"excluded": excluded, "invalid": int((~result.valid).sum())})
        return self.state.arrays, metrics

    def _simulated_shares(
        self,
        server_round: int,
        shares: list[ClientShares],
        oracle: list[torch.Tensor | None],
        layout: ArrayLayout,
    ) -> tuple[list[ClientShares], Any]:
        """With an omniscient attack, S1 crafts and shares the attackers' updates."""
        if self.simulated_attack is None:
            return shares, None
        nodes = tuple(s.client for s in shares)
        generator = server_generator(self.seed, server_round, ServerStream.ATTACK)
        updates, attack_state = self.simulated_attack.apply(
            torch.stack(oracle),
            nodes,
            generator,
            self.state.attack_state,
            server_round=server_round,
            tensors=layout.float_tensors,
        )
        key = X25519PublicKey.from_public_bytes(self.backend.s2_key.public_key)
        byzantine = self.simulated_attack.byzantine
        crafted = []
        for shared, update in zip(shares, updates, strict=True):
            if self.simulated_attack.partition_of(shared.client) not in byzantine:
                crafted.append(shared)
                continue
            parts = share(encode(update.double().numpy()))
            context = envelope_context(self.context(server_round), shared.client)
            crafted.append(
                ClientShares(shared.client, parts.seed, seal(key, parts.rest.tobytes(), context))
            )
        return crafted, attack_state

    def close(self) -> None:
        """Close the channels to S2 and the dealer (the services keep running)."""
        if self.backend is not None:
            self.backend.close()
            self.backend = None


def check_feasible(rule: str, num_clients: int, num_byzantine: int) -> None:
    """``RoundSkipped`` unless S2's ``rule`` can run on ``num_clients`` (valid) updates."""
    try:
        parse_pipeline(rule, num_clients, min(num_byzantine, num_clients))
    except ConfigError as error:
        raise RoundSkipped(f"{num_clients} clients are too few: {error}") from None


def _client_shares(
    reply: Message, oracle_size: int | None
) -> tuple[ClientShares, torch.Tensor | None] | None:
    """A reply's shares (and plaintext update for the simulated attack), or None if malformed."""
    try:
        examples_of(reply)
        record = config_of(reply, SECURE_RECORD)
        seed, envelope = record.get("seed"), record.get("envelope")
        if (
            not isinstance(seed, bytes)
            or len(seed) != SEED_BYTES
            or not isinstance(envelope, bytes)
        ):
            raise Refused("no seed and envelope")
        update = None
        if oracle_size is not None:
            update = vector_of(arrays_of(reply, ORACLE_RECORD), "update", oracle_size)
    except Refused:
        return None
    return ClientShares(reply.metadata.src_node_id, seed, envelope), update


@STRATEGIES.register("secure")
def secure(
    experiment: Experiment, sampling: dict[str, Any], partition_of: Callable[[int], int | None]
) -> SecureStrategy:
    """``strategy = "secure"``: the ``aggregator`` (distance-based) run by S2 on shares."""
    data = dataset_of(experiment)
    model = create_model(experiment.model, data.input_shape, data.num_classes, experiment.seed)
    d = ArrayLayout.of_state(model.state_dict()).size  # integer buffers are not shared
    if not wrap_free(d, experiment.secure_bits):
        raise ConfigError(
            f"{experiment.model} has d = {d} parameters: secure-bits must be below "
            f"{largest_bits(d):.1f} so that no distance wraps"
        )

    passing = honest_pass_probability(
        d, experiment.secure_bits, experiment.secure_clip, experiment.secure_noise
    )
    if passing < HONEST_PASS:
        bound = largest_noise(d, experiment.secure_bits, experiment.secure_clip)
        raise ConfigError(
            f"with d = {d}, secure-bits = {experiment.secure_bits}, secure-clip = "
            f"{experiment.secure_clip} and secure-noise = {experiment.secure_noise}, an honest "
            f"client passes the validity range with probability {passing:.2f}: use secure-noise "
            f"<= {bound:.3g}, a smaller secure-clip, or larger secure-bits"
        )

    def backend() -> SecureBackend:
        return SecureBackend(
            experiment.secure_s2, experiment.secure_dealer, Path(experiment.secure_certs)
        )

    return SecureStrategy(
        backend,
        experiment.aggregator,
        num_byzantine=experiment.num_byzantine,
        bits=experiment.secure_bits,
        clip=experiment.secure_clip,
        noise=experiment.secure_noise,
        seed=experiment.seed,
        server_lr=experiment.server_lr,
        server_momentum=experiment.server_momentum,
        simulated_attack=simulated_attack_of(experiment, partition_of),
        **sampling,
    )
