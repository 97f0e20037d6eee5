"""A rich progress display of a run: round, test accuracy, loss and elapsed time."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from stamen.simulations.results import Row


class RoundProgress:
    """Fed with metric rows as they are written; shows the latest server evaluation."""

    def __init__(self, num_rounds: int, console: Console) -> None:
        self.latest: dict[str, float] = {}
        self.round = 0
        self._progress = Progress(
            TextColumn("round"),
            MofNCompleteColumn(),
            BarColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("run", total=num_rounds, metrics="starting")

    def __enter__(self) -> RoundProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, row: Row) -> None:
        if row.scope == "server":
            self.latest[row.metric] = row.value
        elif row.metric == "train-loss":
            self.latest["train-loss"] = row.value
        if row.scope == "clients" and row.metric == "replies":
            self.round = max(self.round, row.round)
        self._progress.update(self._task, completed=self.round, metrics=self.describe())

    def describe(self) -> str:
        parts = []
        if "accuracy" in self.latest:
            parts.append(f"test acc {self.latest['accuracy']:.4f}")
        if "loss" in self.latest:
            parts.append(f"test loss {self.latest['loss']:.4f}")
        if "train-loss" in self.latest:
            parts.append(f"train loss {self.latest['train-loss']:.4f}")
        return "  ".join(parts) or "starting"

    def final_line(self) -> str:
        return f"finished {self.round} rounds: {self.describe()}"
