import tomllib
from pathlib import Path

import pytest

from stamen.algorithms.aggregation.settings import pipeline_of
from stamen.errors import ConfigError
from stamen.experiment import Experiment, parse_assignment

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"


def test_pyproject_run_config_lists_every_key_with_its_default():
    table = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]
    assert table == Experiment().to_run_config()


def test_run_config_round_trip():
    experiment = Experiment(num_clients=7, alpha=0.1, model="mlp")
    assert Experiment.from_run_config(experiment.to_run_config()) == experiment


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("strategy", "fedsomething", "fedavg"),
        ("model", "transformer", "cnn"),
        ("partition", "random", "dirichlet"),
        ("dataset", "cifar10", "mnist"),
        ("alpha", 0.0, "alpha must be > 0"),
        ("alpha", -1.0, "alpha must be > 0"),
        ("num-clients", 0, "num-clients must be at least 1"),
        ("fraction-train", 1.5, "[0, 1]"),
        ("device", "tpu", "auto"),
        ("lr", "fast", "lr must be float"),
        ("no-such-key", 1, "expected one of"),
    ],
)
def test_bad_values_name_what_is_allowed(key, value, allowed):
    with pytest.raises(ConfigError) as error:
        Experiment.from_run_config({key: value})
    message = str(error.value)
    assert allowed in message
    assert "\n" not in message


def test_local_epochs_or_steps_required():
    with pytest.raises(ConfigError, match="local-epochs or local-steps"):
        Experiment(local_epochs=0, local_steps=0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("lr=0.1", ("lr", 0.1)),
        ("num-clients = 5", ("num-clients", 5)),
        ("model=cnn", ("model", "cnn")),
        ('dataset="hf:uoft-cs/cifar10"', ("dataset", "hf:uoft-cs/cifar10")),
        ("dataset=npz:/tmp/x.npz", ("dataset", "npz:/tmp/x.npz")),
    ],
)
def test_parse_assignment(text, expected):
    assert parse_assignment(text) == expected


def test_parse_assignment_needs_equals():
    with pytest.raises(ConfigError, match="key=value"):
        parse_assignment("lr")


def test_readme_table_documents_every_key_with_its_default():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    for key, value in Experiment().to_run_config().items():
        shown = f'"{value}"' if isinstance(value, str) else str(value)
        shown = shown.lower() if isinstance(value, bool) else shown  # TOML's true / false
        assert f"| `{key}` | `{shown}` |" in readme, key


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"attack": "sign-flip"}, "needs num-byzantine > 0"),
        ({"attack": "alie", "num-byzantine": 2}, "needs strategy=robust"),
        ({"num-byzantine": 10}, "num_byzantine"),
        ({"strategy": "robust", "aggregator": "krum", "num-byzantine": 9}, "n > 2f + 2"),
        ({"strategy": "robust", "aggregator": "bucketing(s=2) | nope"}, "expected one of"),
        ({"byzantine-data": "sorted"}, "expected one of same, iid"),
        ({"attack": "nope", "num-byzantine": 1}, "sign-flip"),
        ({"clip-scaling": "cube"}, "expected one of none, linear, sqrt"),
        ({"clip-scaling": "linear", "worker-momentum": 1.0}, "worker-momentum < 1"),
    ],
)
def test_robustness_settings_are_checked_before_a_run(settings, expected):
    with pytest.raises(ConfigError) as error:
        Experiment.from_run_config({"num-clients": 20, **settings})
    assert expected in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("scaling", "tau"), [("none", 10.0), ("linear", 100.0), ("sqrt", 10 / 0.1**0.5)]
)
def test_clip_radius_is_scaled_for_worker_momentum(scaling, tau):
    experiment = Experiment.from_run_config(
        {
            "num-clients": 20,
            "strategy": "robust",
            "aggregator": "bucketing(s=2) | cclip(tau=10, iters=3)",
            "worker-momentum": 0.9,
            "clip-scaling": scaling,
        }
    )
    assert pipeline_of(experiment).rule.tau == pytest.approx(tau)
    krum = experiment.replace(aggregator="krum")
    assert pipeline_of(krum).rule == pipeline_of(krum.replace(clip_scaling="none")).rule
