import numpy as np
import pytest

from stamen.datasets import load_dataset
from stamen.datasets.idx import read_idx, write_idx
from stamen.errors import ConfigError, DatasetUnavailable


def _write_folder(folder, gz: bool) -> None:
    suffix = ".gz" if gz else ""
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 6), ("t10k", 3)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, 4, 5)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(n) % 3)


@pytest.mark.parametrize("name", ["a.idx", "a.idx.gz"])
def test_round_trip(tmp_path, name):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / name, array)
    back = read_idx(tmp_path / name)
    assert back.dtype == np.uint8 and back.shape == (2, 3, 4)
    np.testing.assert_array_equal(back, array)


def test_header_is_big_endian_idx3(tmp_path):
    write_idx(tmp_path / "f", np.zeros((2, 1, 300), dtype=np.uint8))
    raw = (tmp_path / "f").read_bytes()
    assert raw[:4] == b"\x00\x00\x08\x03"
    assert raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x01\x00\x00\x01\x2c"


def test_rejects_non_idx_and_truncated(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04rest")
    with pytest.raises(ConfigError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05ab")
    with pytest.raises(ConfigError, match="holds 2 bytes"):
        read_idx(tmp_path / "short")


@pytest.mark.parametrize("gz", [True, False])
def test_idx_folder_source(tmp_path, gz):
    _write_folder(tmp_path, gz)
    data = load_dataset(f"idx:{tmp_path}")
    assert data.kind == "image" and data.input_shape == (1, 4, 5)
    assert data.train.x.shape == (6, 1, 4, 5) and data.train.x.dtype == np.uint8
    assert data.test.y.tolist() == [0, 1, 2] and data.train.y.dtype == np.int64
    assert data.num_classes == 3


def test_idx_folder_missing_files(tmp_path):
    with pytest.raises(DatasetUnavailable, match="train-images-idx3-ubyte") as info:
        load_dataset(f"idx:{tmp_path}")
    assert "\n" not in str(info.value)
