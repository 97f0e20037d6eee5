"""A run's output folder: config, tidy metrics written as rounds finish, summary, model.

``metrics.csv`` is a tidy long table ``round, scope, metric, value`` (scope ``server`` for
centralised evaluation, ``clients`` for aggregated client metrics). Rows are appended and
flushed as each round ends, so an interrupted run keeps every finished round.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd
import tomli_w
import torch

from stamen.attacks import byzantine_clients
from stamen.experiment import Experiment
from stamen.simulations.plots import plot_accuracy

METRICS_FILE = "metrics.csv"
CHECKPOINT_FILE = "checkpoint.pt"  # the server's state after the last finished round
DROPPED_FILE = "dropped.csv"  # clients dropped from a round, and why
SKIPPED_FILE = "skipped.csv"  # rounds not aggregated (the model stayed), and why
NODES_DIR = "nodes"  # simulated nodes' own state (``node-state-dir``)
COLUMNS = ("round", "scope", "metric", "value")


@dataclass(frozen=True)
class Row:
    round: int
    scope: str
    metric: str
    value: float


def default_out_dir(experiment: Experiment, root: Path = Path("runs")) -> Path:
    """``runs/<timestamp>-<short name>``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return root / f"{stamp}-{experiment.name}"


def with_node_state(experiment: Experiment, out_dir: Path) -> Experiment:
    """Simulated nodes mirror their own state in ``<out_dir>/nodes`` unless told elsewhere."""
    folder = experiment.node_state_dir or str(Path(out_dir) / NODES_DIR)
    return experiment.replace(node_state_dir=folder)


class RunRecorder:
    """Writes one run's folder; ``on_row`` sees every metric row (for progress displays)."""

    def __init__(
        self,
        out_dir: Path,
        experiment: Experiment,
        on_row: Callable[[Row], None] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.experiment = experiment
        self.on_row = on_row
        self.started = time.perf_counter()
        config = experiment.replace(resume=False).to_run_config()
        _write_atomic(self.out_dir / "config.toml", tomli_w.dumps(config))
        if not (experiment.resume and (self.out_dir / METRICS_FILE).exists()):
            with open(self.out_dir / METRICS_FILE, "w", newline="") as file:
                csv.writer(file).writerow(COLUMNS)
        if not experiment.resume:  # nothing of an earlier run in this folder may be resumed
            (self.out_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
            (self.out_dir / DROPPED_FILE).unlink(missing_ok=True)
            (self.out_dir / SKIPPED_FILE).unlink(missing_ok=True)
            shutil.rmtree(self.out_dir / NODES_DIR, ignore_errors=True)

    def keep_rounds_through(self, server_round: int) -> None:
        """On resume: drop the rows of rounds after the checkpoint's (a round cut short)."""
        for name in (METRICS_FILE, DROPPED_FILE, SKIPPED_FILE):
            if (self.out_dir / name).exists():
                table = pd.read_csv(self.out_dir / name)
                kept = table[table["round"] <= server_round]
                _write_atomic(self.out_dir / name, kept.to_csv(index=False))

    def add(self, server_round: int, scope: str, metrics: Mapping[str, float]) -> None:
        """Append one row per metric and flush, so finished rounds survive a crash."""
        rows = [
            Row(server_round, scope, name, float(value))
            for name, value in metrics.items()
            if isinstance(value, (int, float))
        ]
        with open(self.out_dir / METRICS_FILE, "a", newline="") as file:
            csv.writer(file).writerows((r.round, r.scope, r.metric, r.value) for r in rows)
        if self.on_row:
            for row in rows:
                self.on_row(row)

    def add_dropped(self, server_round: int, dropped: list[tuple[int, int | None, str]]) -> None:
        """Append ``(node-id, partition-id, reason)`` of each client dropped in the round."""
        if not dropped:
            return
        path = self.out_dir / DROPPED_FILE
        new = not path.exists()
        with open(path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(("round", "node-id", "partition-id", "reason"))
            writer.writerows((server_round, *row) for row in dropped)

    def add_skipped(self, server_round: int, reason: str) -> None:
        """Append why the round was not aggregated (the model stayed)."""
        path = self.out_dir / SKIPPED_FILE
        new = not path.exists()
        with open(path, "a", newline="") as file:
            writer = csv.writer(file)
            if new:
                writer.writerow(("round", "reason"))
            writer.writerow((server_round, reason))

    def finish(self, model: torch.nn.Module, engine: str) -> dict:
        """Write the final model, ``summary.json`` and ``accuracy.png``; return the summary."""
        torch.save(model.state_dict(), self.out_dir / "model.pt")
        metrics = read_metrics(self.out_dir)
        server = metrics[metrics.scope == "server"]
        final = server[server["round"] == server["round"].max()] if len(server) else server
        summary = {
            "name": self.experiment.name,
            "engine": engine,
            "seed": self.experiment.seed,
            "rounds": self.experiment.num_server_rounds,
            # Which partitions were Byzantine: chosen from the seed, the same on every engine.
            "byzantine-clients": byzantine_clients(
                self.experiment.num_clients, self.experiment.num_byzantine, self.experiment.seed
            ).tolist(),
            "final": {row.metric: row.value for row in final.itertuples()},
            "best-accuracy": float(server[server.metric == "accuracy"].value.max())
            if len(server)
            else None,
            "wall-time-s": round(time.perf_counter() - self.started, 3),
            "versions": library_versions(),
        }
        _write_atomic(self.out_dir / "summary.json", json.dumps(summary, indent=2))
        plot_accuracy(metrics, self.out_dir / "accuracy.png", title=self.experiment.name)
        return summary


def read_metrics(out_dir: Path) -> pd.DataFrame:
    """The tidy metrics table of a run folder."""
    return pd.read_csv(Path(out_dir) / METRICS_FILE)


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("stamen", "flwr", "flwr-datasets", "torch", "numpy", "pandas"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
