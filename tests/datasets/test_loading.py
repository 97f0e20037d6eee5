import time
from pathlib import Path

import numpy as np
import pytest

from stamen.datasets import DATASETS, cache_dir, load_dataset
from stamen.datasets.loading import parse_spec
from stamen.errors import ConfigError, DatasetUnavailable


def test_registered_names():
    expected = {"mnist", "fashion-mnist", "shakespeare", "synthetic", "hf:", "npz:", "idx:"}
    assert expected <= set(DATASETS)


def test_unknown_name_lists_names_and_prefixes():
    with pytest.raises(ConfigError) as info:
        load_dataset("cifar10")
    message = str(info.value)
    for allowed in ("mnist", "fashion-mnist", "shakespeare", "synthetic", "hf:", "npz:", "idx:"):
        assert allowed in message
    assert "\n" not in message


@pytest.mark.parametrize(
    "spec, parsed",
    [
        ("mnist", ("mnist", "")),
        ("npz:/a/b.npz", ("npz:", "/a/b.npz")),
        ("synthetic(alpha=0.5, users=3)", ("synthetic", "alpha=0.5, users=3")),
        ("hf:ylecun/mnist", ("hf:", "ylecun/mnist")),
    ],
)
def test_parse_spec(spec, parsed):
    assert parse_spec(spec) == parsed


def test_bad_specs():
    with pytest.raises(ConfigError, match="hf:<name>, npz:<path>, idx:<folder>"):
        load_dataset("mnist((")
    with pytest.raises(ConfigError, match="takes no options"):
        load_dataset("mnist(x=1)")
    with pytest.raises(ConfigError, match="alpha, beta, users"):
        load_dataset("synthetic(gamma=1)")


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("STAMEN_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "stamen"
    monkeypatch.setenv("STAMEN_CACHE", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"
    monkeypatch.delenv("STAMEN_CACHE")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "stamen"


def test_loaded_once_per_process(tmp_path):
    path = tmp_path / "once.npz"
    x = np.zeros((2, 3), np.float32)
    np.savez(path, x_train=x, y_train=np.array([0, 1]), x_test=x, y_test=np.array([1, 0]))
    first = load_dataset(f"npz:{path}")
    assert load_dataset(f"npz:{path}", seed=7) is first  # unseeded source: one copy
    assert load_dataset("synthetic(users=3)", seed=1) is load_dataset("synthetic(users=3)", seed=1)
    assert load_dataset("synthetic(users=3)", seed=2) is not load_dataset(
        "synthetic(users=3)", seed=1
    )


def test_hf_offline_fails_fast_with_one_line(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailable) as info:
        load_dataset("hf:ylecun/mnist")
    assert time.perf_counter() - start < 5  # no network retries
    message = str(info.value)
    assert message.startswith("hf:ylecun/mnist needs internet access to the Hugging Face Hub")
    assert "\n" not in message


def test_hf_unreachable_hub_fails_fast_with_one_line(monkeypatch):
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:1")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(DatasetUnavailable) as error:
        load_dataset("hf:uoft-cs/cifar10")
    assert time.monotonic() - started < 5
    assert "cannot be reached" in str(error.value) and "\n" not in str(error.value)
