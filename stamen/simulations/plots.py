"""Plots of a run's tidy metrics (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def plot_accuracy(metrics: pd.DataFrame, path: Path, title: str = "") -> None:
    """Test accuracy and loss per round (server scope), with client train loss if present."""
    fig, (acc_ax, loss_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for (scope, metric), rows in metrics.groupby(["scope", "metric"]):
        label = f"{scope} {metric}"
        if metric == "accuracy":
            acc_ax.plot(rows["round"], rows["value"], marker=".", label=label)
        elif metric in ("loss", "train-loss"):
            loss_ax.plot(rows["round"], rows["value"], marker=".", label=label)
    acc_ax.set(xlabel="round", ylabel="accuracy", title="accuracy")
    loss_ax.set(xlabel="round", ylabel="loss", title="loss")
    for ax in (acc_ax, loss_ax):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
