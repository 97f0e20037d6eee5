import numpy as np
import pytest

from stamen.datasets.npz_source import load_npz
from stamen.errors import ConfigError, DatasetUnavailable


def test_grey_images_gain_channel_axis(tmp_path):
    path = tmp_path / "img.npz"
    x = np.arange(4 * 2 * 3, dtype=np.uint8).reshape(4, 2, 3)
    np.savez(path, x_train=x, y_train=np.array([0, 1, 2, 1]), x_test=x[:2], y_test=np.array([4, 0]))
    data = load_npz(path)
    assert data.kind == "image" and data.input_shape == (1, 2, 3)
    assert data.train.x.shape == (4, 1, 2, 3)
    assert data.num_classes == 5 and data.train.groups is None


def test_vectors_with_groups(tmp_path):
    path = tmp_path / "vec.npz"
    np.savez(
        path,
        x_train=np.ones((3, 7), np.float32),
        y_train=np.array([0, 1, 0]),
        x_test=np.ones((1, 7), np.float32),
        y_test=np.array([1]),
        groups_train=np.array([5, 5, 9]),
        groups_test=np.array([9]),
    )
    data = load_npz(path)
    assert data.kind == "vector" and data.input_shape == (7,)
    assert data.train.groups.tolist() == [5, 5, 9]


def test_integer_rows_are_sequences(tmp_path):
    path = tmp_path / "seq.npz"
    x = np.zeros((2, 10), dtype=np.int32)
    np.savez(path, x_train=x, y_train=np.array([0, 1]), x_test=x, y_test=np.array([1, 1]))
    assert load_npz(path).kind == "sequence"


def test_missing_keys_and_file(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((1, 2)), y_train=np.zeros(1))
    with pytest.raises(ConfigError, match="lacks x_test, y_test"):
        load_npz(path)
    with pytest.raises(DatasetUnavailable, match="x_train, y_train, x_test, y_test"):
        load_npz(tmp_path / "absent.npz")
