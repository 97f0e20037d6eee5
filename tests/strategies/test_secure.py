"""Secure two-server aggregation end to end: equal to plaintext robust aggregation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stamen.errors import ConfigError
from stamen.secure.certificates import make_certificates
from stamen.simulations.config import Experiment
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


def test_a_client_that_drops_out_does_not_stall_the_round(tmp_path):
    """Replies from four clients, one of them an error (the client crashed after being
    sampled): S1 aggregates the other three through real S2 and dealer processes."""
    from flwr.app import Array, ArrayRecord, Error, Message, MetricRecord, RecordDict

    from stamen.clients.client_app import app as client_app
    from stamen.clients.secure_update import SECURE_RECORD, shared_update
    from stamen.secure.backend import SecureBackend
    from stamen.secure.services import spawn
    from stamen.simulations.inline_engine import InlineGrid
    from stamen.strategies.robust import RobustState
    from stamen.strategies.secure import SecureStrategy

    certs = make_certificates(tmp_path / "certs")
    services = [spawn(party, certs, tmp_path) for party in ("s2", "dealer")]
    try:
        strategy = SecureStrategy(
            lambda: SecureBackend(services[0].address, services[1].address, certs),
            "multi-krum(m=2)",
            num_byzantine=0,
            bits=19,
            clip=0.0,
            noise=0.0,
            seed=0,
        )
        strategy.backend = strategy.connect()
        start = ArrayRecord({"w": Array(np.zeros(4, np.float32))})
        strategy.state = RobustState(arrays=start)
        config = {"secure-key": strategy.backend.s2_key, "secure-context": strategy.context(1)}
        InlineGrid(client_app, {}, 1)  # sets Flower's task identity for Message construction
        replies = []
        for node, update in enumerate([[1, 0, 0, 0], [1, 0.1, 0, 0], [1, 0, 0.3, 0]], start=1):
            request = Message(RecordDict(), dst_node_id=node, message_type="train")
            shares = shared_update(torch.tensor(update), config, node)
            content = RecordDict(
                {SECURE_RECORD: shares, "metrics": MetricRecord({"num-examples": 10})}
            )
            replies.append(Message(content, reply_to=request))
        request = Message(RecordDict(), dst_node_id=4, message_type="train")
        replies.append(Message(Error(code=1, reason="client crashed"), reply_to=request))
        arrays, metrics = strategy.aggregate_train(1, replies)
        strategy.close()
    finally:
        for service in services:
            service.stop()
    assert metrics["invalid"] == 0 and metrics["excluded"] == 0
    assert np.allclose(arrays["w"].numpy(), [1, 0.05, 0, 0], atol=1e-4)  # the two best
