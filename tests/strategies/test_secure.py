"""Secure two-server aggregation end to end: equal to plaintext robust aggregation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stamen.errors import ConfigError, RoundSkipped
from stamen.experiment import Experiment
from stamen.secure.certificates import make_certificates
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.ray_engine import run_ray
from stamen.simulations.results import RunRecorder, read_metrics


def attacked(tiny_experiment, attack, rounds, **changes):
    return tiny_experiment.replace(
        num_clients=12,
        min_available_clients=12,
        strategy="secure",
        aggregator="bucketing(s=2) | krum",
        attack=attack,
        num_byzantine=1,
        num_server_rounds=rounds,
        secure_clip=0.0,  # plaintext robust aggregation does not clip
        **changes,
    )


def run(experiment, folder):
    run_inline(experiment, RunRecorder(folder, experiment))
    return torch.load(folder / "model.pt"), read_metrics(folder)


def final_accuracy(metrics):
    server = metrics[(metrics.scope == "server") & (metrics.metric == "accuracy")]
    return float(server.sort_values("round").value.iloc[-1])


def test_one_round_under_alie_equals_plaintext_bucketing_and_krum(tiny_experiment, tmp_path):
    secure = attacked(tiny_experiment, "alie", rounds=1)
    ours, metrics = run(secure, tmp_path / "secure")
    plain, _ = run(secure.replace(strategy="robust"), tmp_path / "plain")
    for key in plain:  # same selection; fixed-point error below 1e-4
        assert torch.allclose(ours[key], plain[key], atol=1e-4, rtol=0), key
    assert metrics[metrics.metric == "invalid"].value.sum() == 0
    assert not (tmp_path / "secure" / "secure" / "s2.log").read_text().count("Traceback")


def test_ipm_run_reaches_the_plaintext_accuracy(tiny_experiment, tmp_path):
    secure = attacked(tiny_experiment, "ipm(epsilon=0.1)", rounds=5)
    _, ours = run(secure, tmp_path / "secure")
    _, plain = run(secure.replace(strategy="robust"), tmp_path / "plain")
    assert final_accuracy(ours) == pytest.approx(final_accuracy(plain), abs=0.03)
    assert final_accuracy(ours) > 0.5


def test_secure_run_agrees_across_engines(tiny_experiment, tmp_path):
    experiment = attacked(tiny_experiment, "sign-flip", rounds=2)
    inline, _ = run(experiment, tmp_path / "inline")
    run_ray(experiment, tmp_path / "ray")
    ray = torch.load(tmp_path / "ray" / "model.pt")
    for key in inline:
        assert torch.allclose(inline[key], ray[key], atol=1e-5, rtol=0), key


def test_unreachable_servers_fail_the_round_and_keep_the_model(tiny_experiment, tmp_path):
    certs = make_certificates(tmp_path / "certs")
    experiment = attacked(
        tiny_experiment,
        "none",
        rounds=1,
        secure_s2="127.0.0.1:9",
        secure_dealer="127.0.0.1:9",
        secure_certs=str(certs),
    ).replace(num_byzantine=0)
    model, metrics = run(experiment, tmp_path / "run")
    start, _ = run(
        experiment.replace(strategy="robust", num_server_rounds=1, lr=0.0), tmp_path / "start"
    )
    assert metrics[metrics.metric == "secure-failed"].value.tolist() == [1.0]
    for key in model:
        assert torch.equal(model[key], start[key]), key


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"aggregator": "median"}, "runs on distances only"),
        ({"aggregator": "krum", "secure-bits": 40}, r"secure-bits must be in \[1, 28\]"),
        ({"aggregator": "krum", "secure-s2": "127.0.0.1:1"}, "together"),
    ],
)
def test_bad_secure_settings_are_refused(settings, expected):
    with pytest.raises(ConfigError, match=expected):
        Experiment.from_run_config({"strategy": "secure", **settings})


def test_a_model_too_large_for_the_validity_range_is_refused_before_a_round(
    tiny_experiment, tmp_path
):
    experiment = attacked(tiny_experiment, "none", rounds=1, secure_bits=27)
    with pytest.raises(ConfigError, match="secure-bits must be below"):
        run(experiment.replace(num_byzantine=0), tmp_path / "run")


def test_malformed_shares_replies_are_refused_by_the_reply_checks():
    """A shares reply needs its shares, a positive finite num-examples and, with a simulated
    attack, a finite plaintext update of the model's size."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict

    from stamen.clients.client_app import app as client_app
    from stamen.messages.keys import ORACLE_RECORD, SECURE_RECORD
    from stamen.secure.prg import SEED_BYTES
    from stamen.simulations.inline_engine import InlineGrid
    from stamen.strategies.secure import _client_shares

    InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
    request = Message(RecordDict(), dst_node_id=3, message_type="train")

    def reply(seed=bytes(SEED_BYTES), examples=10, update=None):
        content = RecordDict(
            {
                SECURE_RECORD: ConfigRecord({"seed": seed, "envelope": b"sealed"}),
                "metrics": MetricRecord({"num-examples": examples}),
            }
        )
        if update is not None:
            content[ORACLE_RECORD] = ArrayRecord({"update": Array(np.asarray(update, np.float32))})
        return Message(content, reply_to=request)

    shares, update = _client_shares(reply(), None)
    assert shares.client == 3 and shares.seed == bytes(SEED_BYTES) and update is None
    assert torch.equal(_client_shares(reply(update=[1.0, 2.0]), 2)[1], torch.tensor([1.0, 2.0]))
    for bad, oracle_size in [
        (reply(seed=b"short"), None),
        (reply(examples=0), None),
        (reply(examples=float("nan")), None),
        (reply(), 2),  # no plaintext update for the simulated attack
        (reply(update=[1.0, 2.0, 3.0]), 2),
        (reply(update=[np.inf, 2.0]), 2),
    ]:
        assert _client_shares(bad, oracle_size) is None


def shared_round(tmp_path, rule, updates, bits=19, crashed=0):
    """S1's ``aggregate_train`` of round 1 over replies carrying shares of ``updates`` (and
    ``crashed`` error replies), through real S2 and dealer processes; returns the strategy
    and the outcome (or the exception it raised)."""
    from flwr.app import Array, ArrayRecord, Error, Message, MetricRecord, RecordDict

    from stamen.clients.client_app import app as client_app
    from stamen.clients.secure_update import SECURE_RECORD, shared_update
    from stamen.secure.backend import SecureBackend
    from stamen.simulations.inline_engine import InlineGrid
    from stamen.simulations.secure_services import spawn
    from stamen.strategies.secure import SecureStrategy
    from stamen.strategies.server_step import RobustState

    certs = make_certificates(tmp_path / "certs")
    services = [spawn(party, certs, tmp_path) for party in ("s2", "dealer")]
    try:
        strategy = SecureStrategy(
            lambda: SecureBackend(services[0].address, services[1].address, certs),
            rule,
            num_byzantine=0,
            bits=bits,
            clip=0.0,
            noise=0.0,
            seed=0,
        )
        strategy.backend = strategy.connect()
        start = ArrayRecord({"w": Array(np.zeros(len(updates[0]), np.float32))})
        strategy.state = RobustState(arrays=start)
        key, context = strategy.backend.s2_key.public_key, strategy.context(1)
        InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
        replies = []
        for node, update in enumerate(updates, start=1):
            request = Message(RecordDict(), dst_node_id=node, message_type="train")
            shares = shared_update(torch.tensor(update), key, context, node)
            content = RecordDict(
                {SECURE_RECORD: shares, "metrics": MetricRecord({"num-examples": 10})}
            )
            replies.append(Message(content, reply_to=request))
        for node in range(len(updates) + 1, len(updates) + 1 + crashed):
            request = Message(RecordDict(), dst_node_id=node, message_type="train")
            replies.append(Message(Error(code=1, reason="client crashed"), reply_to=request))
        try:
            outcome = strategy.aggregate_train(1, replies)
        except RoundSkipped as skipped:
            outcome = skipped
        strategy.close()
    finally:
        for service in services:
            service.stop()
    return strategy, start, outcome


def test_a_client_that_drops_out_does_not_stall_the_round(tmp_path):
    """Replies from four clients, one of them an error (the client crashed after being
    sampled): S1 aggregates the other three."""
    updates = [[1, 0, 0, 0], [1, 0.1, 0, 0], [1, 0, 0.3, 0]]
    _, _, (arrays, metrics) = shared_round(tmp_path, "multi-krum(m=2)", updates, crashed=1)
    assert metrics["invalid"] == 0 and metrics["excluded"] == 0
    assert np.allclose(arrays["w"].numpy(), [1, 0.05, 0, 0], atol=1e-4)  # the two best


def test_a_round_in_which_no_client_passes_is_skipped_not_aggregated_to_zero(tmp_path):
    """Every update lies outside the validity range (2**(bits - 16) = 1 here): the round
    is skipped with its reason and the model kept, never replaced by a zero aggregate."""
    updates = [[30.0, -30.0, 30.0, 30.0], [-30.0, 30.0, 30.0, -30.0], [30.0, 30.0, -30.0, 30.0]]
    strategy, start, outcome = shared_round(tmp_path, "multi-krum(m=2)", updates, bits=16)
    assert isinstance(outcome, RoundSkipped) and "no client's shares passed" in str(outcome)
    assert strategy.state.arrays is start


def test_a_round_with_too_few_replies_for_the_rule_is_skipped(tmp_path):
    """Krum with f = 0 needs n > 2: two replies arrive (one crashed)."""
    strategy, start, outcome = shared_round(tmp_path, "krum", [[1, 0], [0, 1]], crashed=1)
    assert isinstance(outcome, RoundSkipped) and "too few" in str(outcome)
    assert strategy.state.arrays is start


def test_noise_that_honest_clients_cannot_pass_is_refused_before_a_round(tiny_experiment, tmp_path):
    """The mlp has d = 54,410: with clip 1 and 19 bits, noise 0.05 leaves an honest client
    almost no chance to pass the range check; every client passes with noise 0.005."""
    experiment = attacked(tiny_experiment, "none", rounds=1, secure_noise=0.05)
    with pytest.raises(ConfigError, match=r"use secure-noise <= 0\.012"):
        run(experiment.replace(num_byzantine=0, secure_clip=1.0), tmp_path / "run")
    passing = experiment.replace(num_byzantine=0, secure_clip=1.0, secure_noise=0.005)
    run(passing, tmp_path / "passing")
    metrics = read_metrics(tmp_path / "passing")
    assert metrics[metrics.metric == "invalid"].value.sum() == 0


def test_a_model_with_batchnorm_counters_aggregates(tiny_experiment, tmp_path):
    """resnet8's BatchNorm counters are not shared (d is its float size): the run, once
    refused, aggregates; the counters keep the global model's value and the weights move
    (``start``: a round at lr 0)."""
    rng = np.random.default_rng(0)
    images = {
        f"{k}_{s}": v
        for s in ("train", "test")
        for k, v in (
            ("x", rng.integers(0, 256, (32, 3, 32, 32), dtype=np.uint8)),
            ("y", rng.integers(0, 2, 32)),
        )
    }
    np.savez(tmp_path / "images.npz", **images)
    experiment = tiny_experiment.replace(
        dataset=f"npz:{tmp_path / 'images.npz'}",
        model="resnet8",
        strategy="secure",
        aggregator="krum",
        num_server_rounds=1,
        local_steps=1,
        batch_size=4,
    )
    model, metrics = run(experiment, tmp_path / "secure")
    start, _ = run(experiment.replace(strategy="robust", lr=0.0), tmp_path / "start")
    counters = [key for key in model if key.endswith("num_batches_tracked")]
    assert counters and all(model[key] == 0 for key in counters)  # the initial model's
    assert not torch.equal(model["fc.weight"], start["fc.weight"])
    assert metrics[metrics.metric == "invalid"].value.sum() == 0
