"""The ClientApp's secure reply against a curious or malicious S1: no plaintext on the
server's word, noise the servers cannot regenerate, shares sealed only to a certified key."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict

from stamen.clients import client_app as stamen_client
from stamen.datasets import load_dataset
from stamen.messages.keys import ORACLE_RECORD, SECURE_RECORD, SECURE_TRAIN
from stamen.models import create_model
from stamen.secure.certificates import make_certificates
from stamen.secure.envelope import envelope_context, open_envelope, public_bytes
from stamen.secure.key_binding import certify_key
from stamen.secure.prg import expand
from stamen.secure.ring import decode
from stamen.simulations.inline_engine import InlineGrid

CONTEXT = "run=test;round=1"


@pytest.fixture
def s2(tmp_path):
    """A genuine S2: its X25519 key certified with its TLS key of the deployment's CA."""
    certs = make_certificates(tmp_path / "certs")
    key = X25519PrivateKey.generate()
    return key, certify_key(public_bytes(key.public_key()), certs), certs


def secure_experiment(tiny_experiment, noise=0.0):
    return tiny_experiment.replace(
        strategy="secure", aggregator="krum", secure_clip=0.0, secure_noise=noise
    )


def secure_message(experiment, certified, **config):
    InlineGrid(stamen_client.app, experiment.to_run_config(), 4)  # sets the task identity
    data = load_dataset(experiment.dataset, seed=experiment.seed)
    model = create_model(experiment.model, data.input_shape, data.num_classes, 0)
    record = {
        "server-round": 1,
        "secure-key": certified.public_key,
        "secure-key-signature": certified.signature,
        "secure-key-certificate": certified.certificate,
        "secure-context": CONTEXT,
        "secure-clip": experiment.secure_clip,
        "secure-noise": experiment.secure_noise,
        **config,
    }
    content = RecordDict(
        {"arrays": ArrayRecord(model.state_dict()), "config": ConfigRecord(record)}
    )
    message = Message(content, dst_node_id=2, message_type=SECURE_TRAIN)
    message.metadata.__dict__["_message_id"] = "m1"
    return message


def node_context(experiment, certs, **node_config):
    return Context(
        run_id=1,
        node_id=2,
        node_config={
            "partition-id": 0,
            "num-partitions": experiment.num_clients,
            "secure-ca": str(certs / "ca.pem"),
            **node_config,
        },
        state=RecordDict(),
        run_config=experiment.to_run_config(),
    )


def opened_update(reply, s2_key, d):
    """What S1 and S2 together reconstruct from the reply's shares (only S2 can open its)."""
    record = reply.content.config_records[SECURE_RECORD]
    rest = open_envelope(s2_key, record["envelope"], envelope_context(CONTEXT, 2))
    total = expand(record["seed"], d) + np.frombuffer(rest, dtype="<u8").astype(np.uint64)
    return decode(total)


def test_a_message_asking_for_the_plaintext_gets_shares_only(tiny_experiment, s2):
    experiment = secure_experiment(tiny_experiment)
    _, certified, certs = s2
    message = secure_message(experiment, certified, **{"secure-oracle": True})
    reply = stamen_client.app(message, node_context(experiment, certs))
    assert SECURE_RECORD in reply.content.config_records
    assert ORACLE_RECORD not in reply.content.array_records
    assert "arrays" not in reply.content.array_records
    # The simulation's own node (its engine turned the oracle on) does send it.
    allowed = node_context(experiment, certs, **{"simulation-oracle": "true"})
    message = secure_message(experiment, certified, **{"secure-oracle": True})
    reply = stamen_client.app(message, allowed)
    assert ORACLE_RECORD in reply.content.array_records


def test_two_runs_with_the_same_seed_draw_different_noise(tiny_experiment, s2):
    """Everything the servers know (seed, round, partition, model) is the same in both
    replies; the noise still differs, so neither server can regenerate and subtract it."""
    experiment = secure_experiment(tiny_experiment, noise=0.5)
    key, certified, certs = s2
    d = sum(p.numel() for p in create_model(experiment.model, (60,), 10, 0).state_dict().values())
    updates = []
    for _ in range(2):
        reply = stamen_client.app(
            secure_message(experiment, certified), node_context(experiment, certs)
        )
        updates.append(opened_update(reply, key, d))
    difference = updates[0] - updates[1]  # the training is identical: noise minus noise
    assert np.std(difference) == pytest.approx(0.5 * np.sqrt(2), rel=0.1)


def forged_keys(tmp_path, certified):
    """What a man-in-the-middle S1 can offer: its own key with S2's signature and
    certificate, its key signed with S1's own CA-issued certificate, or with a CA of its own."""
    mine = public_bytes(X25519PrivateKey.generate().public_key())
    with_s1_certificate = tmp_path / "s1-as-s2"
    own_ca = make_certificates(tmp_path / "own-ca")
    return {
        "substituted": (mine, certified.signature, certified.certificate),
        "signed-by-s1": _signed_as(certified, mine, with_s1_certificate),
        "own-ca": _signed_with(own_ca, mine),
    }


def _signed_with(certs, public):
    forged = certify_key(public, certs)
    return forged.public_key, forged.signature, forged.certificate


def _signed_as(certified, public, folder):
    """S1 signs with its own (CA-issued) TLS key, its certificate naming s1."""
    certs = folder.parent / "certs"
    folder.mkdir()
    (folder / "s2.key").write_bytes((certs / "s1.key").read_bytes())
    (folder / "s2.pem").write_bytes((certs / "s1.pem").read_bytes())
    return _signed_with(folder, public)


@pytest.mark.parametrize("forgery", ["substituted", "signed-by-s1", "own-ca"])
def test_a_key_substituted_by_s1_is_refused_with_one_line(
    tiny_experiment, s2, tmp_path, caplog, forgery
):
    experiment = secure_experiment(tiny_experiment)
    _, certified, certs = s2
    public, signature, certificate = forged_keys(tmp_path, certified)[forgery]
    message = secure_message(
        experiment,
        certified,
        **{
            "secure-key": public,
            "secure-key-signature": signature,
            "secure-key-certificate": certificate,
        },
    )
    with caplog.at_level(logging.ERROR):
        reply = stamen_client.app(message, node_context(experiment, certs))
    assert reply.has_error() and "refus" in reply.error.reason
    assert not reply.has_content()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "\n" not in errors[0].getMessage()


def test_a_node_without_its_own_ca_refuses_to_share(tiny_experiment, s2):
    experiment = secure_experiment(tiny_experiment)
    _, certified, certs = s2
    context = node_context(experiment, certs)
    del context.node_config["secure-ca"]
    reply = stamen_client.app(secure_message(experiment, certified), context)
    assert reply.has_error() and "secure-ca" in reply.error.reason
