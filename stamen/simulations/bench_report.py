"""A grid's results: one tidy ``results.csv``, a ``table.md`` of mean +- std, and plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from stamen.simulations.bench import Cell, cell_dir  # noqa: E402
from stamen.simulations.results import read_metrics  # noqa: E402

SEED = "seed"


def collect_results(cells: list[Cell], out_dir: Path) -> pd.DataFrame:
    """The tidy rows of every finished cell, with one column per grid axis."""
    frames = []
    for cell in cells:
        folder = cell_dir(out_dir, cell)
        if not (folder / "summary.json").exists():
            continue
        frame = read_metrics(folder)
        for axis, value in cell.axes.items():
            frame[axis] = value
        frame[SEED] = cell.experiment.seed
        frames.append(frame)
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    results.to_csv(Path(out_dir) / "results.csv", index=False)
    return results


def final_accuracy_table(results: pd.DataFrame, axes: list[str], last: int = 1) -> pd.DataFrame:
    """Per cell (all axes but the seed): mean and std over seeds of the final test accuracy.

    ``last > 1`` averages each run's last ``last`` evaluations first (the bucketing paper
    reports the mean of the last evaluations).
    """
    accuracy = results[(results.scope == "server") & (results.metric == "accuracy")]
    groups = [a for a in axes if a != SEED]
    per_run = (
        accuracy.sort_values("round")
        .groupby([*groups, SEED], dropna=False)
        .value.apply(lambda v: v.tail(last).mean())
        .reset_index()
    )
    table = per_run.groupby(groups, dropna=False).value.agg(["mean", "std", "count"])
    return table.reset_index()


def write_table(table: pd.DataFrame, path: Path, title: str) -> None:
    """``table.md``: accuracy in percent as mean +- std over seeds (no std for one seed)."""
    axes = [c for c in table.columns if c not in ("mean", "std", "count")]
    lines = [f"# {title}", "", "| " + " | ".join([*axes, "accuracy (%)", "seeds"]) + " |"]
    lines.append("|" + " --- |" * (len(axes) + 2))
    for row in table.itertuples(index=False):
        values = row._asdict()
        accuracy = f"{100 * values['mean']:.2f}"
        if values["count"] > 1:
            accuracy += f" ± {100 * values['std']:.2f}"
        cells = [str(values[a]).replace("|", "\\|") for a in axes]
        lines.append("| " + " | ".join([*cells, accuracy, str(values["count"])]) + " |")
    Path(path).write_text("\n".join(lines) + "\n")


def plot_grid(results: pd.DataFrame, axes: list[str], path: Path) -> None:
    """Test accuracy per round, one panel per value of the first axis, mean over seeds."""
    accuracy = results[(results.scope == "server") & (results.metric == "accuracy")]
    panel_axis, line_axes = axes[0], [a for a in axes[1:] if a != SEED]
    panels = list(dict.fromkeys(accuracy[panel_axis]))
    fig, grid = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, panel in zip(grid[0], panels):
        rows = accuracy[accuracy[panel_axis] == panel]
        keys = line_axes or [panel_axis]
        for label, line in rows.groupby(keys, dropna=False):
            mean = line.groupby("round").value.mean()
            ax.plot(
                mean.index,
                mean.values,
                label=" / ".join(map(str, label if isinstance(label, tuple) else (label,))),
            )
        ax.set(title=f"{panel_axis} = {panel}", xlabel="round", ylabel="test accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
