import numpy as np
import pytest

from stamen.datasets.fashion_mnist import DEBIAN_FOLDER, load_fashion_mnist
from stamen.datasets.idx import write_idx
from stamen.errors import DatasetUnavailable


def test_folder_from_environment(monkeypatch, tmp_path):
    for prefix, n in (("train", 4), ("t10k", 2)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", np.full((n, 28, 28), 7))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n))
    monkeypatch.setenv("STAMEN_FASHION_MNIST", str(tmp_path))
    data = load_fashion_mnist()
    assert data.name == "fashion-mnist" and data.train.x.shape == (4, 1, 28, 28)
    assert data.test.y.tolist() == [0, 1]


def test_missing_names_the_debian_package(monkeypatch, tmp_path):
    monkeypatch.setenv("STAMEN_FASHION_MNIST", str(tmp_path / "none"))
    with pytest.raises(DatasetUnavailable) as info:
        load_fashion_mnist()
    assert "apt-get install dataset-fashion-mnist" in str(info.value)
    assert "idx:<folder>" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.skipif(not DEBIAN_FOLDER.exists(), reason="apt-get install dataset-fashion-mnist")
def test_debian_package(monkeypatch):
    monkeypatch.delenv("STAMEN_FASHION_MNIST", raising=False)
    data = load_fashion_mnist()
    assert (len(data.train), len(data.test)) == (60000, 10000)
    assert np.bincount(data.train.y).tolist() == [6000] * 10
