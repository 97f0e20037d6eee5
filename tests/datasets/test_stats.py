import numpy as np

from stamen.datasets import label_counts, plot_label_distribution


def test_label_counts_by_hand():
    labels = np.array([0, 0, 1, 2, 2, 2])
    counts = label_counts(labels, [np.array([0, 2]), np.array([1, 3, 4, 5])])
    assert counts.columns.tolist() == [0, 1, 2, "total"]
    assert counts.to_numpy().tolist() == [[1, 1, 0, 2], [1, 0, 3, 4]]


def test_plot_writes_png(tmp_path):
    labels = np.array([0, 1, 1, 2])
    path = tmp_path / "dist.png"
    plot_label_distribution(label_counts(labels, [np.array([0, 1]), np.array([2, 3])]), path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
