import numpy as np
import pytest
import torch

from stamen.datasets import FederatedDataset, Split
from stamen.errors import ConfigError


def _images() -> FederatedDataset:
    x = np.array([[[[0, 255]]], [[[51, 102]]]], dtype=np.uint8)  # (2, 1, 1, 2)
    split = Split(x, np.array([3, 1]))
    return FederatedDataset("toy", split, split, 4, (1, 1, 2), "image", mean=0.5, std=0.25)


def test_to_tensors_normalises_images():
    data = _images()
    x, y = data.to_tensors(data.train, np.array([1, 0]))
    expected = torch.tensor([[[[0.2, 0.4]]], [[[0.0, 1.0]]]]).sub(0.5).div(0.25)
    assert x.dtype == torch.float32 and x.shape == (2, 1, 1, 2)
    torch.testing.assert_close(x, expected)
    assert y.dtype == torch.int64 and y.tolist() == [1, 3]


@pytest.mark.parametrize("channels", [1, 3])
def test_image_batches_are_channels_last_whatever_the_stored_strides(channels):
    # MNIST's and Fashion-MNIST's stored arrays differ in strides; a one-channel batch is
    # contiguous in both layouts, so only the stride of C tells torch which one to use
    pixels = np.arange(2 * channels * 12, dtype=np.uint8).reshape(2, channels, 3, 4)
    for stored in (
        pixels,
        np.ascontiguousarray(pixels.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2),
    ):
        split = Split(stored, np.array([0, 1]))
        data = FederatedDataset("toy", split, split, 2, (channels, 3, 4), "image")
        x, _ = data.to_tensors(split, np.array([0, 1]))
        assert x.stride() == (12 * channels, 1, 4 * channels, channels)
        torch.testing.assert_close(x, torch.from_numpy(pixels).float() / 255)


def test_to_tensors_sequence_and_vector_dtypes():
    seq = Split(np.array([[1, 2], [3, 4]], dtype=np.uint8), np.array([0, 1]))
    vec = Split(np.array([[0.5], [1.5]], dtype=np.float64), np.array([1, 0]))
    x_seq, _ = FederatedDataset("s", seq, seq, 5, (2,), "sequence").to_tensors(seq, np.array([1]))
    x_vec, _ = FederatedDataset("v", vec, vec, 2, (1,), "vector").to_tensors(vec, np.array([1]))
    assert x_seq.dtype == torch.int64 and x_seq.tolist() == [[3, 4]]
    assert x_vec.dtype == torch.float32 and x_vec.tolist() == [[1.5]]


def test_split_rejects_mismatched_lengths():
    with pytest.raises(ConfigError, match="3 samples but y has 2"):
        Split(np.zeros((3, 2)), np.zeros(2, dtype=np.int64))


def test_unknown_kind_lists_kinds():
    split = Split(np.zeros((1, 2)), np.zeros(1, dtype=np.int64))
    with pytest.raises(ConfigError, match="image, sequence, vector"):
        FederatedDataset("bad", split, split, 1, (2,), "audio")
