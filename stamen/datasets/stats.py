"""How labels are spread over clients: a count table and a stacked bar chart of it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def label_counts(labels: np.ndarray, parts: Sequence[np.ndarray]) -> pd.DataFrame:
    """Samples of each class per client.

    Parameters
    ----------
    labels : np.ndarray, shape (n,)
        Integer labels >= 0.
    parts : sequence of np.ndarray
        Index arrays, one per client (as `partition` returns).

    Returns
    -------
    pandas.DataFrame
        One row per client (index ``client``), one column per class ``0 .. C-1`` and a
        ``total`` column.
    """
    labels = np.asarray(labels)
    num_classes = int(labels.max(initial=-1)) + 1
    table = (
        np.stack(
            [
                np.bincount(labels[np.asarray(p, dtype=np.int64)], minlength=num_classes)
                for p in parts
            ]
        )
        if len(parts)
        else np.zeros((0, num_classes), dtype=np.int64)
    )
    counts = pd.DataFrame(table, columns=list(range(num_classes)))
    counts.index.name = "client"
    counts["total"] = table.sum(axis=1)
    return counts


def plot_label_distribution(counts: pd.DataFrame, path: str | Path) -> None:
    """Save a stacked horizontal bar per client (one colour per class) as a PNG.

    Parameters
    ----------
    counts : pandas.DataFrame
        A table from `label_counts`; the ``total`` column is not drawn.
    path : str or Path
        Where to write the image.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = counts.drop(columns="total", errors="ignore")
    height = min(40.0, 1.5 + 0.22 * len(classes))
    fig, ax = plt.subplots(figsize=(8, height))
    try:
        left = np.zeros(len(classes))
        cmap = plt.get_cmap("tab20" if classes.shape[1] > 10 else "tab10")
        for j, column in enumerate(classes.columns):
            values = classes[column].to_numpy()
            ax.barh(classes.index, values, left=left, color=cmap(j % cmap.N), label=str(column))
            left += values
        ax.invert_yaxis()
        ax.set_xlabel("samples")
        ax.set_ylabel("client")
        if classes.shape[1] <= 20:
            ax.legend(title="class", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize="small")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
