"""End-to-end runs on both engines: same seed, same final model."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from stamen.errors import StamenError
from stamen.simulations.inline_engine import run_inline
from stamen.simulations.ray_engine import run_ray
from stamen.simulations.results import RunRecorder

EXPECTED_FILES = {"config.toml", "metrics.csv", "summary.json", "accuracy.png", "model.pt"}


def run_on_inline(experiment, out_dir):
    run_inline(experiment, RunRecorder(out_dir, experiment))
    return out_dir


def final_model(out_dir):
    return torch.load(out_dir / "model.pt")


def test_inline_run_writes_results_and_learns(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(num_server_rounds=4)
    out = run_on_inline(experiment, tmp_path / "inline")
    assert EXPECTED_FILES <= {p.name for p in out.iterdir()}
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics.columns) == ["round", "scope", "metric", "value"]
    server = metrics[(metrics.scope == "server") & (metrics.metric == "accuracy")]
    assert list(server["round"]) == [0, 1, 2, 3, 4]
    assert server.value.iloc[-1] > server.value.iloc[0] + 0.1
    replies = metrics[(metrics.scope == "clients") & (metrics.metric == "replies")]
    assert list(replies.value) == [4.0] * 4
    summary = json.loads((out / "summary.json").read_text())
    assert summary["engine"] == "inline"
    assert summary["final"]["accuracy"] == pytest.approx(server.value.iloc[-1])
    assert set(summary["versions"]) >= {"flwr", "torch", "python"}


def test_same_seed_same_model_inline_twice_and_other_seed_differs(tiny_experiment, tmp_path):
    first = final_model(run_on_inline(tiny_experiment, tmp_path / "a"))
    second = final_model(run_on_inline(tiny_experiment, tmp_path / "b"))
    other = final_model(run_on_inline(tiny_experiment.replace(seed=1), tmp_path / "c"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.allclose(first[k], other[k]) for k in first)


def test_eval_every_skips_rounds_but_keeps_the_last(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(num_server_rounds=5, eval_every=2)
    out = run_on_inline(experiment, tmp_path / "run")
    metrics = pd.read_csv(out / "metrics.csv")
    rounds = metrics[(metrics.scope == "server") & (metrics.metric == "accuracy")]["round"]
    assert list(rounds) == [0, 2, 4, 5]


def test_ray_and_inline_give_the_same_final_model(tiny_experiment, tmp_path):
    """Flower's Ray engine and the in-process engine agree to 1e-6, also when sampling."""
    experiment = tiny_experiment.replace(fraction_train=0.5, num_server_rounds=3)
    inline = final_model(run_on_inline(experiment, tmp_path / "inline"))
    run_ray(experiment, tmp_path / "ray")
    ray = final_model(tmp_path / "ray")
    assert json.loads((tmp_path / "ray" / "summary.json").read_text())["engine"] == "ray"
    assert inline.keys() == ray.keys()
    for key in inline:
        assert torch.allclose(inline[key], ray[key], atol=1e-6, rtol=0), key
    # And sampling matters: training every client gives another model.
    everyone = final_model(run_on_inline(experiment.replace(fraction_train=1.0), tmp_path / "all"))
    assert any(not torch.allclose(inline[k], everyone[k], atol=1e-4) for k in inline)
    inline_metrics = pd.read_csv(tmp_path / "inline" / "metrics.csv")
    ray_metrics = pd.read_csv(tmp_path / "ray" / "metrics.csv")
    pd.testing.assert_frame_equal(
        inline_metrics[["round", "scope", "metric"]], ray_metrics[["round", "scope", "metric"]]
    )
    assert (inline_metrics.value - ray_metrics.value).abs().max() < 1e-5


def test_client_side_evaluation_is_recorded(tiny_experiment, tmp_path):
    experiment = tiny_experiment.replace(fraction_evaluate=1.0, partition="natural")
    out = run_on_inline(experiment, tmp_path / "run")
    metrics = pd.read_csv(out / "metrics.csv")
    client_eval = metrics[(metrics.scope == "clients") & (metrics.metric == "eval-accuracy")]
    assert list(client_eval["round"]) == [1, 2]
    assert client_eval.value.between(0, 1).all()


def test_a_failing_ray_run_raises_with_the_server_log(tiny_experiment, tmp_path):
    broken = tiny_experiment.replace(dataset=f"npz:{tmp_path / 'missing.npz'}")
    with pytest.raises(StamenError) as error:
        run_ray(broken, tmp_path / "ray")
    assert "finished:failed" in str(error.value)
    assert "missing.npz does not exist" in str(error.value)


def test_robust_run_with_a_simulated_attack_agrees_across_engines(tiny_experiment, tmp_path):
    """The Byzantine partitions and the bucketing shuffle are the same on both engines."""
    experiment = tiny_experiment.replace(
        num_clients=6,
        min_available_clients=6,
        strategy="robust",
        attack="alie",
        num_byzantine=2,
        aggregator="bucketing(s=2) | cclip(tau=1, iters=3)",
    )
    inline = final_model(run_on_inline(experiment, tmp_path / "inline"))
    run_ray(experiment, tmp_path / "ray")
    ray = final_model(tmp_path / "ray")
    for key in inline:
        assert torch.allclose(inline[key], ray[key], atol=1e-6, rtol=0), key
    byzantine = json.loads((tmp_path / "ray" / "summary.json").read_text())["byzantine-clients"]
    assert len(byzantine) == 2 and set(byzantine) <= set(range(6))
    clean = final_model(
        run_on_inline(experiment.replace(attack="none", num_byzantine=0), tmp_path / "clean")
    )
    assert any(not torch.allclose(inline[k], clean[k], atol=1e-4) for k in inline)


def test_compressed_traffic_and_pruning_agree_across_engines(tiny_experiment, tmp_path):
    """Error-feedback memory, the model a node holds and the pruned model travel the same
    way on Flower's Ray engine as in process (node state kept by each engine)."""
    experiment = tiny_experiment.replace(
        num_server_rounds=3,
        uplink="ef | random-block(ratio=0.2)",
        downlink="ef | top-k(ratio=0.2)",
    )
    for name, settings in {
        "compressed": {},
        "pruned": {"downlink": "none", "pruning": "dpf(sparsity=0.5)"},
    }.items():
        run = experiment.replace(**settings)
        inline = final_model(run_on_inline(run, tmp_path / f"{name}-inline"))
        run_ray(run, tmp_path / f"{name}-ray")
        ray = final_model(tmp_path / f"{name}-ray")
        for key in inline:
            assert torch.allclose(inline[key], ray[key], atol=1e-6, rtol=0), (name, key)
        traffic = [
            pd.read_csv(tmp_path / f"{name}-{engine}" / "metrics.csv").query(
                "metric == 'bytes-down'"
            )
            for engine in ("inline", "ray")
        ]
        assert list(traffic[0].value) == list(traffic[1].value)
